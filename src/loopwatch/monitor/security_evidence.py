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
    store: Store, registry: Registry, name: str, *, since: datetime | None, until: datetime
) -> list[Finding]:
    """One finding per feedback source whose labels skew against the others, dated by the arrival
    of its last suspect label: before any retraining can use them."""
    try:
        from loopwatch.poisoning import screen_feedback
    except ImportError:  # pragma: no cover - the screens ship with loopwatch; kept for partial installs
        return []
    found = []
    for suspect in screen_feedback(store, name, since=since, until=until):
        data: dict[str, Any] = suspect.to_dict()
        first, last = suspect.first_label_time, suspect.last_label_time
        found.append(Finding(
            kind="label_poisoning",
            window_start=first,
            window_end=last,
            available_at=last,
            severity=float(data.get("severity", data.get("score", 1.0)) or 1.0),
            summary=f"labels from source {suspect.source} skew against the other sources: {suspect.reason}",
            evidence={"source": suspect.source, **data},
        ))
    return found
