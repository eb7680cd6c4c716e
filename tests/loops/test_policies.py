"""The loop engine's named rules (loops/policies.py), each on hand-made findings and rows."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from loopwatch.loops.policies import (
    evasion_explained_by_software,
    mapping_clients,
    not_software_suspects,
    one_latency_finding_per_window,
    probing_clients,
)
from loopwatch.loops.report import Finding

T0 = datetime(2026, 3, 2, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def finding(kind: str, day: int = 0, **evidence: object) -> Finding:
    start = T0 + day * DAY
    return Finding(kind=kind, window_start=start, window_end=start + DAY, available_at=start + DAY, severity=1.0,
                   summary=kind, evidence=dict(evidence))


def test_every_probing_client_is_named_but_only_mappers_leave_the_population() -> None:
    probes = [finding("adversarial_probing", 0, client_id="mapper", reasons=["support", "spread"]),
              finding("adversarial_probing", 1, client_id="edge", reasons=["boundary"])]
    assert probing_clients(probes) == {(T0, "mapper"), (T0 + DAY, "edge")}
    assert mapping_clients(probes) == {(T0, "mapper")}


def test_a_probing_client_is_never_a_software_change_suspect() -> None:
    rows = pd.DataFrame({"__client_id": ["app", "mapper", "app", None], "x": [1, 2, 3, 4]})
    kept = not_software_suspects(rows, T0, {(T0, "mapper"), (T0 + DAY, "app")})
    assert kept["x"].tolist() == [1, 3, 4]  # the mapper's rows in its window; app was named another day
    assert not_software_suspects(rows, T0, set()) is rows


@given(st.lists(st.tuples(st.sampled_from(["latency_regression", "covariate_shift", "software_change"]),
                          st.integers(0, 3)), max_size=20))
def test_one_latency_finding_per_window_keeps_the_first_and_everything_else(items: list[tuple[str, int]]) -> None:
    findings = [finding(kind, day, n=i) for i, (kind, day) in enumerate(items)]
    kept = one_latency_finding_per_window(findings)
    latency = [f for f in kept if f.kind == "latency_regression"]
    assert len({f.window_start for f in latency}) == len(latency)  # at most one per window
    assert [f for f in kept if f.kind != "latency_regression"] == [f for f in findings if f.kind != "latency_regression"]
    for f in latency:  # the first of its window, in order
        assert f == next(g for g in findings if g.kind == "latency_regression" and g.window_start == f.window_start)


def test_the_evasion_of_a_known_client_whose_software_changed_joins_that_change() -> None:
    """A client seen before, whose new version sends one feature in the wrong unit, is flagged
    on every row by the evasion score: that is the software change, one incident with the
    evasion test in its evidence. A new client (no history) flagged in the same window is not."""
    change = finding("software_change", 2, software_change={"what": "client_version", "client": "app",
                                                            "value": "app 3.0"})
    drift = finding("covariate_shift", 2)
    known = finding("adversarial_evasion", 2, client_id="app", history_rate=0.05, rate=1.0)
    new = finding("adversarial_evasion", 2, client_id="evader", history_rate=None, rate=0.9)
    later = replace(known, window_start=T0 + 3 * DAY, window_end=T0 + 4 * DAY)
    findings, evasions = evasion_explained_by_software([change, drift], [known, new, later])
    assert evasions == [new, later]
    assert findings[0].evidence["evasion"] == known.evidence and findings[1] == drift
