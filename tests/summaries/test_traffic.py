"""Traffic and client evidence: exact counts, bounded latency quantiles, and an extraction client
that a day of ordinary traffic does not hide."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.detectors.extraction import ExtractionDetector
from loopwatch.errors import InvalidInput
from loopwatch.records import PredictionEvent
from loopwatch.summaries.reservoir import RowSample
from loopwatch.summaries.traffic import ClientSums, TrafficSums
from tests.realdata import flights

events = st.lists(
    st.tuples(st.integers(0, 3), st.one_of(st.floats(0, 5000), st.just(float("nan"))),
              st.sampled_from(["api", "batch", "shadow"]), st.sampled_from(["f1", "f2"])),
    max_size=25,
)


def traffic(rows) -> TrafficSums:
    return TrafficSums.from_columns(row_indices=[r[0] for r in rows], request_latency_ms=[r[1] for r in rows],
                                    request_types=[r[2] for r in rows], fingerprint_ids=[r[3] for r in rows])


@settings(max_examples=60, deadline=None)
@given(events, events, events, st.lists(st.sampled_from(["schema", "auth"]), max_size=5))
def test_traffic_sums_merge_like_one_batch(a, b, c, rejected) -> None:
    x, y, z = traffic(a), traffic(b), traffic(c)
    assert x.merge(y) == y.merge(x) and x.merge(y).merge(z) == x.merge(y.merge(z)) == traffic(a + b + c)
    assert x.merge(TrafficSums()) == x
    with_rejections = x.merge(TrafficSums.from_rejections(rejected))
    assert sum(with_rejections.rejections.values()) == len(rejected) and with_rejections.n == len(a)
    assert TrafficSums.from_dict(json.loads(json.dumps(with_rejections.to_dict()))) == with_rejections


def test_latency_quantiles_bound_numpys_and_counts_are_exact() -> None:
    rng = np.random.default_rng(3)
    latency = rng.lognormal(3, 0.8, 4000)  # milliseconds, one per request of 1 to 3 rows
    rows = rng.integers(1, 4, 4000)
    index = np.concatenate([np.arange(r) for r in rows])
    per_event = np.repeat(latency, rows)
    per_event[:rows[0]] = np.nan  # the first request was ingested without a latency
    sums = TrafficSums.from_columns(row_indices=index, request_latency_ms=per_event,
                                    request_types=["api"] * len(index), fingerprint_ids=["f"] * len(index))
    assert sums.n == len(index) and sums.n_requests == 4000 and sums.latency_us.n_missing == 1
    measured = np.rint(latency[1:] * 1000) / 1000
    assert sums.latency_us.total == int(np.rint(latency[1:] * 1000).sum())
    for q in (0.5, 0.99):
        exact = np.percentile(measured, 100 * q, method="inverted_cdf")
        got = sums.latency_ms(q)
        assert got.low <= exact <= got.high and got.relative_error < 0.045


def test_from_events_counts_request_types_and_fingerprints() -> None:
    at = datetime(2026, 3, 2, tzinfo=timezone.utc)

    def event(request: str, row: int, kind: str, fingerprint: str, runtime: float) -> PredictionEvent:
        return PredictionEvent(
            request_id=request, row_index=row, model_name="m", model_version=1, timestamp=at, logged_at=at,
            runtime_ms=runtime, row_runtime_ms=runtime / 2, prediction=[1], probability=None,
            input_data_summary={}, data=None, request_type=kind, client_id=None, fingerprint_id=fingerprint,
            replayed=False)

    sums = TrafficSums.from_events([event("a", 0, "api", "f1", 12.0), event("a", 1, "api", "f1", 12.0),
                                    event("b", 0, "batch", "f2", 40.0)])
    assert (sums.n, sums.n_requests, sums.latency_us.n) == (3, 2, 2)
    assert sums.request_types == {"api": 2, "batch": 1} and sums.fingerprints == {"f1": 2, "f2": 1}
    assert sums.latency_us.total == 52_000


def clients_part(ids: list[tuple[str | None, int]], *, k: int = 4, max_clients: int | None = None,
                 rows_per_client: int | None = None) -> ClientSums:
    frame = pd.DataFrame({"x": [float(i) for _, i in ids]})
    return ClientSums.from_columns(
        client_ids=[c for c, _ in ids], request_ids=[f"r{i}" for _, i in ids], row_indices=[0] * len(ids),
        timestamps_us=[i * 1000 for _, i in ids], request_types=["api"] * len(ids), rows=frame,
        proba=np.array([[0.5 + (i % 10) / 20, 0.5 - (i % 10) / 20] for _, i in ids]).reshape(-1, 2), k=k,
        max_clients=max_clients, rows_per_client=rows_per_client,
        # every fifth event unscored, a third of the others flagged by the evasion score
        evasion_flags=[None if i % 5 == 0 else i % 3 == 0 for _, i in ids])


client_batches = st.lists(st.tuples(st.sampled_from(["a", "b", None]), st.integers(0, 10_000)),
                          unique_by=lambda e: e[1], max_size=40).map(
    lambda rows: [rows[i::3] for i in range(3)])


@settings(max_examples=50, deadline=None)
@given(client_batches)
def test_client_sums_merge_like_one_batch(parts) -> None:
    x, y, z = (clients_part(p) for p in parts)
    assert x.merge(y) == y.merge(x) and x.merge(y).merge(z) == x.merge(y.merge(z)) == clients_part(sum(parts, []))
    assert x.merge(ClientSums(k=4)) == x
    assert ClientSums.from_dict(json.loads(json.dumps(x.to_dict()))) == x
    # pruning keeps every count and the samples of the largest clients only
    pruned = x.merge(y).pruned(1)
    assert pruned.activity == x.merge(y).activity and len(pruned.samples) <= 1
    assert clients_part(parts[0], max_clients=2, rows_per_client=2) == x.pruned(2, 2)
    # a cut sample merges like any other: below its threshold, filled up to k
    assert all(len(s.rows) <= 2 for s in x.pruned(5, 2).samples.values())
    assert x.pruned(5, 2).merge(y.pruned(5, 2)).activity == x.merge(y).activity


@settings(max_examples=40, deadline=None)
@given(client_batches, st.sets(st.integers(0, 10_000), max_size=15))
def test_deleting_requests_takes_their_queries_out_of_counts_and_samples(parts, deleted: set[int]) -> None:
    rows = sum(parts, [])
    whole = clients_part(rows)
    gone = [(c, i) for c, i in rows if i in deleted]
    after = whole.without_requests([f"r{i}" for _, i in gone], clients_part(gone))
    rebuilt = clients_part([(c, i) for c, i in rows if i not in deleted])
    assert {c: (a.n, a.margins, a.evasion_scored, a.evasion_flagged) for c, a in after.activity.items()} == {
        c: (a.n, a.margins, a.evasion_scored, a.evasion_flagged) for c, a in rebuilt.activity.items()}
    for client, sample in after.samples.items():
        assert sample.n == rebuilt.samples[client].n
        assert not {r.request_id for r in sample.rows} & {f"r{i}" for _, i in gone}
        # still the remaining rows below the old threshold: a prefix of the rebuilt sample
        assert sample.rows == rebuilt.samples[client].rows[: len(sample.rows)]


def test_client_activity_is_exact_and_shadow_and_ingested_are_no_queries() -> None:
    part = ClientSums.from_columns(
        client_ids=["a", "a", "a", "b", "b"], request_ids=list("pqrst"), row_indices=[0] * 5,
        timestamps_us=[5, 1, 9, 3, 4], request_types=["api", "api", "batch", "shadow", "ingested"],
        rows=None, proba=np.array([[0.55, 0.45], [0.9, 0.1], [0.3, 0.7], [0.5, 0.5], [0.5, 0.5]]),
        evasion_flags=[True, None, False, True, True])
    assert list(part.activity) == ["a"]
    a = part.activity["a"]
    assert (a.n, a.first_seen_us, a.last_seen_us) == (3, 1, 9)
    # the evasion score's flags of the client's queries, counted whole: 2 scored, 1 flagged
    assert (a.evasion_scored, a.evasion_flagged) == (2, 1)
    assert ClientSums.from_dict(json.loads(json.dumps(part.to_dict()))) == part
    assert a.near_boundary_share(0.2) == pytest.approx(1 / 3) and a.near_boundary_share(0.5) == pytest.approx(2 / 3)
    # logged without data: counted, never sampled
    assert part.samples["a"].rows == () and part.queries("a")[2] == 0.0
    with pytest.raises(InvalidInput, match="multiple"):
        a.near_boundary_share(0.12)
    with pytest.raises(InvalidInput, match="one entry per event"):
        ClientSums.from_columns(client_ids=["a"], request_ids=[], row_indices=[], timestamps_us=[],
                                request_types=[], rows=None)


FEATURES = ["distance", "air_time", "sched_hour"]


def test_an_extraction_client_among_a_day_of_ordinary_traffic_is_still_named() -> None:
    table = flights().dropna(subset=["air_time"])[FEATURES].reset_index(drop=True)
    rng = np.random.default_rng(14)
    reference = table.sample(3000, random_state=1)
    detector = ExtractionDetector(seed=0, calibration_clients=40).fit(reference, numeric=FEATURES)
    ordinary = table.drop(reference.index).reset_index(drop=True)
    # the attacker: 2,000 queries drawn uniformly over the feature box, spread over 24 hours
    low, high = table.min(), table.max()
    attack = pd.DataFrame({f: rng.uniform(low[f], high[f], 2000).round(0) for f in FEATURES})
    hours, per_hour, taken = 24, 6_000, 0
    parts, everything = [], RowSample.empty(k=2000, seed=9)
    for hour in range(hours):
        # ordinary traffic: 600 clients of skewed sizes, and three batch jobs larger than the attacker
        clients = np.r_[
            np.array([f"user{i}" for i in rng.zipf(1.3, per_hour - 3 * 300) % 600], dtype=object),
            np.repeat(["crm", "billing", "reports"], 300).astype(object),
        ]
        rows = ordinary.iloc[(np.arange(per_hour) + hour * per_hour) % len(ordinary)]
        mine = attack.iloc[taken: taken + (2000 * (hour + 1)) // hours - taken]
        taken += len(mine)
        frame = pd.concat([rows, mine], ignore_index=True)
        client_ids = list(clients) + ["attacker"] * len(mine)
        request_ids = [f"h{hour}-{i}" for i in range(len(frame))]
        columns = dict(request_ids=request_ids, row_indices=[0] * len(frame),
                       timestamps_us=[hour * 3_600_000_000 + i for i in range(len(frame))])
        parts.append(ClientSums.from_columns(client_ids=client_ids, request_types=["api"] * len(frame),
                                             rows=frame, seed=9, max_clients=100, rows_per_client=128, **columns))
        everything = everything.merge(RowSample.from_rows(request_ids, [0] * len(frame), frame, k=2000, seed=9))
    day = parts[0]
    for part in parts[1:]:
        day = day.merge(part)
    assert day.n == hours * per_hour + 2000 and day.activity["attacker"].n == 2000
    # the limit, stated: where more clients out-send it than a stored window samples, it is not sampled
    assert "attacker" in parts[0].samples and "attacker" not in parts[0].pruned(5).samples
    queries, _, covered = day.queries("attacker")
    assert covered == 1.0 and len(queries) == 500
    result = detector.decide(detector.features(queries[FEATURES]), client_id="attacker")
    assert result.flagged, result
    # a batch job of real rows is not named from its sample
    crm, _, _ = day.queries("crm")
    assert not detector.decide(detector.features(crm[FEATURES]), client_id="crm").flagged
    # one window-wide sample of the same size holds too few of the attacker's rows to judge
    attacker_rows = sum(1 for row in everything.rows if int(row.request_id.split("-")[1]) >= per_hour)
    assert attacker_rows < detector.min_rows


def test_a_served_request_counts_at_its_row_0_and_an_ingested_event_on_its_own() -> None:
    """A served request's latency is counted once, at row 0, so that batches merge exactly; an
    ingested file's rows are predictions made elsewhere, each with its own latency, whatever
    their row index (their place in the file)."""
    sums = TrafficSums.from_columns(
        row_indices=[0, 1, 2, 7, 8, 9], request_latency_ms=[5.0, 5.0, 5.0, 40.0, 41.0, 42.0],
        request_types=["api", "api", "api", "ingested", "ingested", "ingested"], fingerprint_ids=["f"] * 6)
    assert (sums.n, sums.n_requests, sums.latency_us.n) == (6, 4, 4)
    assert sums.latency_us.total == 5_000 + 40_000 + 41_000 + 42_000
