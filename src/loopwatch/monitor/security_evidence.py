"""Findings about the model's defences: clients whose queries look like extraction or probing,
and feedback sources whose labels look poisoned."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from loopwatch.loops.report import Finding
from loopwatch.records import PredictionEvent
from loopwatch.registry import Registry
from loopwatch.stores.base import Store


def probing_findings(
    store: Store,
    registry: Registry,
    name: str,
    *,
    since: datetime | None,
    until: datetime | None,
    window: str,
    events: Sequence[PredictionEvent],
) -> list[Finding]:
    """One finding per client and window whose queries crowd the decision boundary or a grid."""
    from loopwatch.monitor.extraction_watch import watch_clients

    found = []
    for alert in watch_clients(store, registry, name, since=since, until=until, window=window, events=events):
        if not alert.flagged:
            continue
        found.append(Finding(
            kind="adversarial_probing",
            window_start=alert.window_start,
            window_end=alert.window_end,
            available_at=alert.window_end,
            severity=alert.score,
            summary=(
                f"client {alert.client_id} sent {alert.n_rows} queries between {alert.first_seen:%H:%M} and "
                f"{alert.last_seen:%H:%M} that look like probing for the decision boundary "
                f"({', '.join(alert.reasons)})"
            ),
            evidence={"client_id": alert.client_id, **alert.to_dict()},
        ))
    return found


def poisoning_findings(
    store: Store, registry: Registry, name: str, *, since: datetime | None, until: datetime, window: str
) -> list[Finding]:
    """One finding per feedback source and window of label arrival whose labels skew against the
    other sources', dated by the end of that window: before any retraining can read them.

    Every label as it was sent counts, corrected ones too: a poisoned label that an honest
    source later corrects is no longer the row's current label, but it was sent.
    """
    from loopwatch.monitor.windows import WindowSpec
    from loopwatch.poisoning.sources import source_skew_test
    from loopwatch.quarantine import _served_predictions

    spec = WindowSpec.parse(window)
    sent = list(store.iter_label_revisions(name, since=since, until=until))
    if not sent or spec.length is None or len({label.client_id for label in sent}) < 2:
        return []
    served = _served_predictions(store, name, sent)
    by_window: dict[datetime, list[Any]] = {}
    for label in sent:
        by_window.setdefault(spec.start_of(label.label_time), []).append(label)
    found = []
    for start, labels in sorted(by_window.items()):
        if len({label.client_id for label in labels}) < 2:
            continue
        evidence = source_skew_test(
            [label.label for label in labels], [label.client_id for label in labels],
            [served.get((label.request_id, label.row_index)) for label in labels],
        )
        end = start + spec.length
        for suspect in (e for e in evidence if e.suspect):
            found.append(Finding(
                kind="label_poisoning",
                window_start=start,
                window_end=end,
                available_at=min(end, until),
                severity=1.0 - float(suspect.adjusted_p),
                summary=(f"labels from source {suspect.source} disagree with the served predictions "
                         f"{suspect.disagreement:.0%} of the time against {suspect.disagreement_others:.0%} "
                         "for the other sources"),
                evidence={"source": suspect.source, **suspect.to_dict()},
            ))
    return found
