"""The summariser on a real SQLite workspace: it follows the log, late events update closed
windows, a rebuild gives the same exact parts, deletes and rebaselines rebuild what they touch,
a model without logged data keeps no rows, and old hours roll up into days."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from loopwatch.application.loop_actions import rebaseline
from loopwatch.application.summaries import Summariser, request_events
from loopwatch.config import Settings
from loopwatch.records import ModelSettings
from loopwatch.summaries.numeric import NumericPart
from loopwatch.summaries.reservoir import ROW_TESTS
from tests.conftest import churn_rows
from tests.summaries.test_conformance import exact_view

T0 = datetime(2026, 3, 2, 8, tzinfo=timezone.utc)


def summariser(ws) -> Summariser:  # type: ignore[no-untyped-def]
    return Summariser(ws.store, ws.registry, settings=Settings(summary_settle_seconds=0))


def log(ws, rows: list[dict], *, at: datetime, request_id: str, minutes: int = 1) -> None:  # type: ignore[no-untyped-def]
    ws.predict("churn", rows, request_id=request_id, client_id="shop",
               timestamps=[at + timedelta(minutes=minutes * i) for i in range(len(rows))])


def stored(ws) -> dict:  # type: ignore[no-untyped-def]
    return {(s.version, s.start): s for s in ws.store.window_summaries("churn")}


def test_incremental_summaries_equal_a_rebuild_late_events_included(trained, churn_training: pd.DataFrame) -> None:
    rows = churn_rows(churn_training, 240)
    s = summariser(trained)
    log(trained, rows[:80], at=T0, request_id="a")  # 08:00 to 09:19
    first = s.catch_up("churn")
    assert first.events == 80 and first.windows == 2 and first.logged_through is not None
    assert s.catch_up("churn").events == 0  # nothing new: nothing read twice
    log(trained, rows[80:160], at=T0 + timedelta(hours=3), request_id="b")
    # a late batch about 08:30-09:09: the closed 08:00 and 09:00 windows take it
    log(trained, rows[160:200], at=T0 + timedelta(minutes=30), request_id="late")
    assert s.catch_up("churn").events == 120
    incremental = stored(trained)
    assert sum(w.n for w in incremental.values()) == 200
    assert incremental[(1, T0)].n == 60 + 30
    rebuilt = s.rebuild("churn")
    assert rebuilt.events == 200
    again = stored(trained)
    assert again.keys() == incremental.keys()
    for key, window in again.items():
        assert exact_view(window) == exact_view(incremental[key])
        assert window.sample == incremental[key].sample
        for name, part in window.features.items():
            if isinstance(part, NumericPart) and part.count:
                other = incremental[key].features[name]
                assert isinstance(other, NumericPart)
                bound = part.rank_error + other.rank_error
                xs, fs = part.cdf_steps()
                assert all(abs(f - other.sketch().get_rank(x, True)) <= bound + 1e-12 for x, f in zip(xs, fs))
    # the whole day, merged on read, is every event
    day = trained.store.read_window("churn", version=1, start=T0.replace(hour=0), end=T0.replace(hour=0) +
                                    timedelta(days=1))
    assert day is not None and day.n == 200 and day.traffic.n_requests == 3
    assert day.clients.activity["shop"].n == 200
    assert day.estimation is not None and day.estimation.n == 200  # CBPE sums from the version's estimator


def test_a_deleted_request_leaves_the_windows_it_was_in(trained, churn_training: pd.DataFrame) -> None:
    rows = churn_rows(churn_training, 60)
    s = summariser(trained)
    log(trained, rows[:40], at=T0, request_id="keep")
    log(trained, rows[40:], at=T0 + timedelta(minutes=5), request_id="gone")
    s.catch_up("churn")
    assert stored(trained)[(1, T0)].n == 60
    events = request_events(trained.store, "gone")
    assert trained.store.delete_request("gone") == 20
    assert s.forget_request("churn", "gone", events) == 1
    window = stored(trained)[(1, T0)]
    assert window.n == 40 and {r.request_id for r in window.sample.rows} == {"keep"}
    fresh = summariser(trained).rebuild("churn")
    assert fresh.events == 40 and exact_view(stored(trained)[(1, T0)]) == exact_view(window)


def test_a_model_without_logged_data_keeps_counts_and_no_rows(trained, churn_training: pd.DataFrame) -> None:
    trained.store.set_model_settings("churn", ModelSettings(log_data=False))
    log(trained, churn_rows(churn_training, 30), at=T0, request_id="private")
    summariser(trained).catch_up("churn")
    window = stored(trained)[(1, T0)]
    assert window.n == 30 and window.sample.rows == () and window.unavailable_tests == ROW_TESTS
    assert window.features["prediction"].n == 30


def test_a_rebaseline_rebuilds_the_versions_bins(trained, churn_training: pd.DataFrame) -> None:
    rows = churn_rows(churn_training, 300)
    s = summariser(trained)
    log(trained, rows, at=T0, request_id="traffic", minutes=2)
    s.catch_up("churn")
    before = {w.layout_id for w in stored(trained).values()}
    rebaseline(trained.registry, "churn", since=T0, until=T0 + timedelta(days=1), reason="new normal",
               at=T0 + timedelta(days=1))
    run = s.catch_up("churn")
    assert run.rebuilt_versions == (1,)
    after = stored(trained)
    assert {w.layout_id for w in after.values()} == {s.layout("churn", 1).layout_id} != before
    assert sum(w.n for w in after.values()) == 300


def test_old_hours_roll_up_into_days_and_old_days_expire(trained, churn_training: pd.DataFrame) -> None:
    rows = churn_rows(churn_training, 48)
    s = Summariser(trained.store, trained.registry,
                   settings=Settings(summary_settle_seconds=0, summary_hourly_days=2, summary_daily_days=3))
    log(trained, rows, at=T0, request_id="spread", minutes=120)  # four days, one event every two hours
    s.catch_up("churn")
    hours = stored(trained)
    assert len(hours) == 48
    whole = trained.store.read_window("churn", version=1, start=T0 - timedelta(days=1), end=T0 + timedelta(days=5))
    assert whole is not None and whole.n == 48
    done = s.apply_retention("churn", now=T0 + timedelta(days=4))
    # hours of the days before 2026-03-04 became days; days before 2026-03-03 expired
    assert done["rolled_up_hours"] == 8 + 12 and done["days_written"] == 2 and done["expired_days"] == 1
    days = trained.store.window_summaries("churn", kind="day")
    assert [d.start.day for d in days] == [3] and days[0].n == 12
    rest = trained.store.read_window("churn", version=1, start=T0 - timedelta(days=1), end=T0 + timedelta(days=5))
    assert rest is not None and rest.n == 48 - 8
    with pytest.raises(Exception, match="summary_daily_days"):
        Settings(summary_hourly_days=30, summary_daily_days=10).with_overrides()


def test_late_labels_rebuild_a_windows_label_part_idempotently(trained, churn_training: pd.DataFrame) -> None:
    from loopwatch.records import Label

    rows = churn_rows(churn_training, 40)
    s = summariser(trained)
    log(trained, rows, at=T0, request_id="scored")
    s.catch_up("churn")
    assert stored(trained)[(1, T0)].labels is None
    truth = churn_training["churned"].head(40).tolist()

    def label(i: int, value: object, at: datetime) -> Label:
        return Label(model_name="churn", request_id="scored", row_index=i, label=value, label_time=at)

    trained.store.write_labels([label(i, truth[i], T0 + timedelta(days=1)) for i in range(25)])
    assert s.catch_up("churn").labelled_windows == 1
    first = stored(trained)[(1, T0)].labels
    assert first is not None and first.n == 25
    assert s.catch_up("churn").labelled_windows == 0  # nothing new: the part stays as it is
    # more labels and a correction of one: the part is rebuilt from the join, never added to
    flipped = 1 - int(truth[0])
    trained.store.write_labels([label(i, truth[i], T0 + timedelta(days=2)) for i in range(25, 40)] +
                               [label(0, flipped, T0 + timedelta(days=2))])
    s.catch_up("churn")
    after = stored(trained)[(1, T0)].labels
    assert after is not None and after.n == 40
    fresh = s.label_part("churn", 1, T0, logged_through=trained.store.summary_watermark("churn"))
    assert fresh == after
    s.rebuild("churn")
    assert stored(trained)[(1, T0)].labels == after


def test_summarize_and_logs_delete_from_the_cli(trained, churn_training: pd.DataFrame, settings) -> None:  # type: ignore[no-untyped-def]
    import json

    from click.testing import CliRunner

    from loopwatch.cli.main import cli

    # yesterday: within the hourly windows' retention, which the command applies
    hour = (datetime.now(timezone.utc) - timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
    log(trained, churn_rows(churn_training, 30), at=hour, request_id="one")
    log(trained, churn_rows(churn_training, 10), at=hour + timedelta(minutes=40), request_id="two")
    trained.writer.close()
    runner = CliRunner()
    done = runner.invoke(cli, ["summarize", "churn"])
    assert done.exit_code == 0, done.output
    assert json.loads(done.output)[0]["events"] == 40
    assert runner.invoke(cli, ["logs", "delete", "two"]).exit_code == 0
    window = stored(trained)[(1, hour)]
    assert window.n == 30 and {r.request_id for r in window.sample.rows} == {"one"}
    again = runner.invoke(cli, ["summarize", "churn", "--rebuild"])
    assert again.exit_code == 0 and json.loads(again.output)[0]["events"] == 30
    refused = runner.invoke(cli, ["summarize", "--rebuild"])
    assert refused.exit_code != 0 and "needs a MODEL" in refused.output and "Traceback" not in refused.output
    missing = runner.invoke(cli, ["summarize", "nope"])
    assert missing.exit_code != 0 and "no model named" in missing.output


def test_the_service_summarises_off_the_request_path(trained, churn_training: pd.DataFrame, settings) -> None:  # type: ignore[no-untyped-def]
    import time

    from fastapi.testclient import TestClient

    from loopwatch.service import create_app

    fast = settings.with_overrides(summary_tick_seconds=0.2, schedule_enabled=False, auth="off",
                                   summaries_enabled=True)
    with TestClient(create_app(fast)) as http:
        sent = http.post("/v1/models/churn/predict", json={"rows": churn_rows(churn_training, 5)})
        assert sent.status_code == 200, sent.text
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not trained.store.window_summaries("churn"):
            time.sleep(0.1)
    windows = trained.store.window_summaries("churn")
    assert sum(w.n for w in windows) == 5


def test_with_summaries_off_the_service_keeps_none(trained, churn_training: pd.DataFrame, settings) -> None:  # type: ignore[no-untyped-def]
    import time

    from fastapi.testclient import TestClient

    from loopwatch.service import create_app

    assert settings.summaries_enabled  # the default: monitoring reads summaries
    fast = settings.with_overrides(summaries_enabled=False, summary_tick_seconds=0.2, schedule_enabled=False,
                                   auth="off")
    with TestClient(create_app(fast)) as http:
        sent = http.post("/v1/models/churn/predict", json={"rows": churn_rows(churn_training, 5)})
        assert sent.status_code == 200, sent.text
        time.sleep(1.0)  # five ticks of a summariser, had one been started
    assert trained.store.window_summaries("churn") == []


def test_monitor_from_summaries_of_a_model_without_logged_data_names_what_it_cannot_run(
        trained, churn_training: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    from loopwatch.application.monitoring import monitor

    trained.store.set_model_settings("churn", ModelSettings(log_data=False))
    log(trained, churn_rows(churn_training, 120), at=T0, request_id="private", minutes=0)
    report = monitor(trained.store, trained.registry, "churn", window="1d", summariser=summariser(trained))
    [window] = report.windows
    assert window.n_events == 120 and window.report.features  # univariate drift from counts and bins
    assert window.report.multivariate == {} and window.report.outliers == {}
    left_out = {t.test: t.reason for t in window.skipped}
    assert left_out["multivariate"] == left_out["outliers"] == "no_row_sample"


def test_monitor_from_summaries_reads_rolled_up_days_whole_and_never_splits_them(
        trained, churn_training: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    from loopwatch.application.monitoring import monitor

    s = Summariser(trained.store, trained.registry,
                   settings=Settings(summary_settle_seconds=0, summary_hourly_days=2, summary_daily_days=3))
    log(trained, churn_rows(churn_training, 48), at=T0, request_id="spread", minutes=120)
    s.catch_up("churn")
    s.apply_retention("churn", now=T0 + timedelta(days=4))  # 2026-03-03 is a day now; 03-02 expired
    daily = monitor(trained.store, trained.registry, "churn", window="1d", summariser=s)
    assert [(w.start.day, w.n_events) for w in daily.windows] == [(3, 12), (4, 12), (5, 12), (6, 4)]
    hourly = monitor(trained.store, trained.registry, "churn", window="1h", summariser=s)
    # an hour of the rolled-up day cannot be read: only the days whose hours are kept
    assert sum(w.n_events for w in hourly.windows) == 28 and {w.start.day for w in hourly.windows} == {4, 5, 6}


def test_a_deleted_request_leaves_the_samples_of_a_rolled_up_day(trained, churn_training: pd.DataFrame) -> None:
    """Once its hours are rolled up, a deleted request's rows still leave the day: its row sample
    and its client's sample and count (the day's aggregates keep the request's share)."""
    s = Summariser(trained.store, trained.registry,
                   settings=Settings(summary_settle_seconds=0, summary_hourly_days=2, summary_daily_days=30))
    rows = churn_rows(churn_training, 60)
    log(trained, rows[:40], at=T0, request_id="keep")
    trained.predict("churn", rows[40:], request_id="gone", client_id="leaver",
                    timestamps=[T0 + timedelta(hours=1, minutes=i) for i in range(20)])
    s.catch_up("churn")
    s.apply_retention("churn", now=T0 + timedelta(days=5))
    [day] = trained.store.window_summaries("churn", kind="day")
    assert {r.request_id for r in day.sample.rows} == {"keep", "gone"} and day.clients.activity["leaver"].n == 20
    events = request_events(trained.store, "gone")
    assert trained.store.delete_request("gone") == 20
    s.forget_request("churn", "gone", events)
    [after] = trained.store.window_summaries("churn", kind="day")
    assert {r.request_id for r in after.sample.rows} == {"keep"} and after.sample.n == 40
    assert "leaver" not in after.clients.activity and "leaver" not in after.clients.samples
    assert after.n == 60  # the aggregates keep the request's share: they hold no row


def test_monitor_from_summaries_reads_whole_hours_and_says_so(trained, churn_training: pd.DataFrame) -> None:  # type: ignore[no-untyped-def]
    from loopwatch.application.monitoring import monitor

    log(trained, churn_rows(churn_training, 60), at=T0, request_id="hour", minutes=1)  # 08:00-08:59
    s = summariser(trained)
    report = monitor(trained.store, trained.registry, "churn", window="1h", summariser=s,
                     since=T0 + timedelta(minutes=30), until=T0 + timedelta(minutes=40))
    assert (report.since, report.until) == (T0, T0 + timedelta(hours=1))
    assert [w.n_events for w in report.windows] == [60]
    from_log = monitor(trained.store, trained.registry, "churn", window="1h",
                       since=T0 + timedelta(minutes=30), until=T0 + timedelta(minutes=40))
    assert [w.n_events for w in from_log.windows] == [10]


def test_hours_rolled_up_while_a_monitor_reads_are_read_once(trained, churn_training: pd.DataFrame) -> None:
    """The service's summariser may roll hours up into days between the monitor listing the
    windows and reading them: the day is written and its hours deleted in one transaction, and
    each window's hours and days are read in one statement, so no window is lost or doubled."""
    from loopwatch.application.monitoring.summary_monitor import _windows
    from loopwatch.application.monitoring.windows import WindowSpec

    s = Summariser(trained.store, trained.registry,
                   settings=Settings(summary_settle_seconds=0, summary_hourly_days=2, summary_daily_days=30))
    log(trained, churn_rows(churn_training, 48), at=T0, request_id="spread", minutes=120)
    s.catch_up("churn")
    reading = _windows(trained.store, "churn", WindowSpec.parse("1d"), start=None, end=None, version=None)
    first = next(reading)  # the windows are listed, the first one read
    rolled = s.apply_retention("churn", now=T0 + timedelta(days=6))  # every hour up to 03-04 rolls up
    assert rolled["rolled_up_hours"] > 0
    read = [first, *reading]
    assert [(key[1].day, summary.n) for key, summary in read] == [(2, 8), (3, 12), (4, 12), (5, 12), (6, 4)]


def test_labels_of_a_rolled_up_day_are_joined_once_late_events_included(
        trained, churn_training: pd.DataFrame) -> None:
    """Labels that arrive after their hours were rolled up join the day's label part; the
    events that arrived for the day after the roll-up are joined by their own hours, and each
    label is counted once when those hours roll up too."""
    from loopwatch.records import Label

    rows = churn_rows(churn_training, 30)
    s = Summariser(trained.store, trained.registry,
                   settings=Settings(summary_settle_seconds=0, summary_hourly_days=2, summary_daily_days=30))
    log(trained, rows[:20], at=T0, request_id="early", minutes=30)
    s.catch_up("churn")
    s.apply_retention("churn", now=T0 + timedelta(days=5))  # 03-02 is a day now
    log(trained, rows[20:], at=T0 + timedelta(hours=2), request_id="late", minutes=5)  # a late backfill
    s.catch_up("churn")
    truth = churn_training["churned"].head(30).tolist()
    at = T0 + timedelta(days=3)
    trained.store.write_labels(
        [Label(model_name="churn", request_id="early", row_index=i, label=truth[i], label_time=at) for i in range(20)]
        + [Label(model_name="churn", request_id="late", row_index=i, label=truth[20 + i], label_time=at)
           for i in range(10)])
    s.catch_up("churn")
    midnight = T0.replace(hour=0)
    window = trained.store.read_window("churn", version=1, start=midnight, end=midnight + timedelta(days=1))
    assert window is not None and window.n == 30 and window.labels is not None and window.labels.n == 30
    s.apply_retention("churn", now=T0 + timedelta(days=5))  # the late hours roll up into the day too
    (day,) = trained.store.window_summaries("churn", kind="day")
    assert day.n == 30 and day.labels is not None and day.labels.n == 30
    assert trained.store.window_summaries("churn", start=midnight, end=midnight + timedelta(days=1)) == []


def test_a_label_part_is_split_by_the_day_its_labels_became_known(trained, churn_training: pd.DataFrame) -> None:
    from loopwatch.records import Label
    from loopwatch.summaries.labels import DAY_US
    from loopwatch.stores.base import to_micros

    rows = churn_rows(churn_training, 30)
    s = summariser(trained)
    log(trained, rows, at=T0, request_id="split")
    s.catch_up("churn")
    truth = churn_training["churned"].head(30).tolist()
    days = [T0 + timedelta(days=d, hours=3) for d in (1, 1, 2)]
    trained.store.write_labels([Label(model_name="churn", request_id="split", row_index=i, label=truth[i],
                                      label_time=days[i % 3]) for i in range(30)])
    s.catch_up("churn")
    part = stored(trained)[(1, T0)].labels
    assert part is not None and part.n == 30
    first, second = (to_micros(T0.replace(hour=0) + timedelta(days=d)) for d in (1, 2))
    assert {day: p.n for day, p in part.arrivals.items()} == {first: 20, second: 10}
    assert part.known_by(first) is None  # nothing was known before the first day ended
    assert part.known_by(first + DAY_US).n == 20 and part.known_by(second + DAY_US) == part.with_arrivals({})
