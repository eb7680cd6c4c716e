"""Window summaries from frames of events: batches merge to the whole, on real flights."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from loopwatch.errors import InvalidInput
from loopwatch.stats.binned import bin_counts, quantile_edges
from loopwatch.summaries.numeric import NumericPart
from loopwatch.summaries.outcomes import LossSums
from loopwatch.summaries.reservoir import ROW_TESTS
from loopwatch.summaries.window import SummaryLayout, WindowSummary, merge_all, summarise_frame
from tests.realdata import flights
from tests.summaries.test_conformance import exact_view

NUMERIC = ("distance", "air_time", "sched_hour")
CATEGORICAL = ("carrier", "origin")


def flight_events(n: int = 2500) -> tuple[pd.DataFrame, SummaryLayout]:
    """``n`` flights as logged events of a regressor predicting air time, and the layout whose
    edges come from the first 1,000 (the reference)."""
    data = flights().iloc[:n].reset_index(drop=True)
    reference = data.iloc[:1000]
    edges = {name: tuple(quantile_edges(np.sort(reference[name].dropna().to_numpy()), n_bins=10).tolist()) for name in NUMERIC}
    frame = data[[*NUMERIC, *CATEGORICAL]].copy()
    frame["carrier"] = frame["carrier"].astype(str)
    frame["origin"] = frame["origin"].astype(str)
    frame["prediction"] = data["distance"] / 8.0
    frame["__timestamp"] = data["time"]
    frame["__version"] = 1
    frame["__request_id"] = [f"q{i // 3}" for i in range(len(data))]
    frame["__row_index"] = [i % 3 for i in range(len(data))]
    frame["__client_id"] = [f"c{i % 7}" for i in range(len(data))]
    frame["__fingerprint_id"] = "fp"
    frame["__request_type"] = "api"
    frame["__request_runtime_ms"] = 2.5
    frame["__has_data"] = True
    layout = SummaryLayout(numeric=edges, categorical=CATEGORICAL, task="regression",
                           output_edges={"prediction": edges["distance"]}, sample_k=50, seed=4)
    return frame, layout


def test_batches_merge_to_the_summaries_of_the_whole_log() -> None:
    frame, layout = flight_events()
    whole = summarise_frame(frame, model="flights", layouts={1: layout})
    assert len(whole) > 10 and sum(s.n for s in whole.values()) == len(frame)
    # the same events in three batches, out of order (a late batch first)
    pieces = [frame.iloc[1800:], frame.iloc[:700], frame.iloc[700:1800]]
    merged: dict = {}
    for piece in pieces:
        for key, summary in summarise_frame(piece, model="flights", layouts={1: layout}).items():
            merged[key] = merged[key].merge(summary) if key in merged else summary
    assert merged.keys() == whole.keys()
    for key, summary in whole.items():
        assert exact_view(merged[key]) == exact_view(summary)
        assert merged[key].sample == summary.sample  # bottom-k: the same rows however batched
        for name in NUMERIC:
            a, b = merged[key].features[name], summary.features[name]
            assert isinstance(a, NumericPart) and isinstance(b, NumericPart)
            if a.count:
                for q in (0.1, 0.5, 0.9):
                    assert abs(a.quantile(q) - b.quantile(q)) <= max(a.maximum - a.minimum, 0) * 0.05 + 1e-9


def test_a_day_from_its_hours_has_the_rows_bins() -> None:
    frame, layout = flight_events()
    hours = summarise_frame(frame, model="flights", layouts={1: layout})
    days = summarise_frame(frame, model="flights", layouts={1: layout}, length=timedelta(days=1))
    for (version, start), day in days.items():
        merged = merge_all([h for (v, s), h in sorted(hours.items()) if start <= s < day.end])
        assert start <= merged.start < merged.end <= day.end
        assert exact_view(merged)["features"] == exact_view(day)["features"]
        rows = frame[(pd.to_datetime(frame["__timestamp"], utc=True) >= start) &
                     (pd.to_datetime(frame["__timestamp"], utc=True) < day.end)]
        x = rows["distance"].dropna().to_numpy()
        part = day.features["distance"]
        assert isinstance(part, NumericPart)
        assert list(part.bins) == bin_counts(np.sort(x), np.asarray(layout.numeric["distance"])).tolist()
        assert part.mean == pytest.approx(float(np.mean(x)), rel=1e-12)


def test_a_model_logged_without_data_keeps_its_counts_and_no_rows() -> None:
    frame, layout = flight_events(900)
    frame["__has_data"] = False
    for built in (summarise_frame(frame, model="f", layouts={1: layout}),
                  summarise_frame(frame.assign(__has_data=True), model="f",
                                  layouts={1: SummaryLayout.from_dict({**layout.to_dict(), "log_data": False})})):
        for summary in built.values():
            assert summary.sample.rows == () and summary.sample.n_without_data == summary.n > 0
            assert summary.unavailable_tests == ROW_TESTS
            assert all(s.rows == () for s in summary.clients.samples.values())
            assert summary.features["distance"].n == summary.n


def test_summaries_round_trip_and_refuse_another_layout() -> None:
    frame, layout = flight_events(600)
    summary = next(iter(summarise_frame(frame, model="f", layouts={1: layout}).values()))
    again = WindowSummary.from_dict(json.loads(json.dumps(summary.to_dict(), allow_nan=False)))
    assert again == summary
    moved = SummaryLayout.from_dict({**layout.to_dict(), "numeric": {**layout.to_dict()["numeric"], "distance": [1.0]}})
    assert moved.layout_id != layout.layout_id
    other = next(iter(summarise_frame(frame, model="f", layouts={1: moved}).values()))
    with pytest.raises(InvalidInput, match="layouts"):
        summary.merge(other)
    with pytest.raises(InvalidInput, match="no summary layout"):
        summarise_frame(frame.assign(__version=2), model="f", layouts={1: layout})
    with pytest.raises(InvalidInput, match="format"):
        WindowSummary.from_dict({**summary.to_dict(), "format": 99})


def test_the_estimator_hook_builds_the_estimation_sums() -> None:
    frame, layout = flight_events(600)

    def hook(batch: pd.DataFrame) -> LossSums:
        e = np.abs(batch["prediction"].to_numpy() * 0.1)
        return LossSums.from_losses(e, e, e**2, e**2)

    built = summarise_frame(frame, model="f", layouts={1: layout}, estimators={1: hook})
    assert sum(s.estimation.n for s in built.values() if s.estimation is not None) == len(frame)
    total = merge_all(list(built.values()))
    assert isinstance(total.estimation, LossSums) and total.n == len(frame)


def test_a_truncated_stored_sample_merges_to_the_whole_windows() -> None:
    from tests.summaries.test_conformance import HOUR, LAYOUT, events

    rng = np.random.default_rng(12)
    batches = [summarise_frame(events(rng, n, 1000 * i), model="m", layouts={1: LAYOUT})[(1, HOUR)]
               for i, n in enumerate((300, 5, 400))]
    whole = merge_all(batches)
    kept = batches[0].stored(8)
    for batch in batches[1:]:
        kept = kept.merge(batch).stored(8)  # what merge-on-write does, batch after batch
    assert kept.sample == whole.stored(8).sample and len(kept.sample.rows) == 8
    # a read merging truncated windows still fills up to k
    halves = merge_all([merge_all(batches[:2]).stored(8), batches[2].stored(8)])
    assert 8 < len(halves.sample.rows) <= LAYOUT.sample_k
