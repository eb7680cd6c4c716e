"""Findings about the model's defences: clients whose queries look like extraction or probing,
and feedback sources whose labels look poisoned."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import pandas as pd

from loopwatch.errors import LoopwatchError
from loopwatch.loops.report import Finding
from loopwatch.records import PredictionEvent
from loopwatch.registry import Registry
from loopwatch.stores.base import Store

if TYPE_CHECKING:
    from loopwatch.application.monitoring.extraction_watch import ClientAlert


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
    from loopwatch.application.monitoring.extraction_watch import watch_clients

    return findings_of_alerts(store, watch_clients(store, registry, name, since=since, until=until, window=window,
                                                   events=events))


def findings_of_alerts(store: Store, alerts: Sequence[ClientAlert]) -> list[Finding]:
    """The flagged alerts of the extraction watch as ``adversarial_probing`` findings."""
    names = key_names(store)
    found = []
    for alert in alerts:
        if not alert.flagged:
            continue
        found.append(Finding(
            kind="adversarial_probing",
            window_start=alert.window_start,
            window_end=alert.window_end,
            available_at=alert.window_end,
            # the strongest signal that named it, in [0, 1] as other kinds' severities
            severity=max(alert.signals[k] for k in alert.reasons),
            summary=(
                f"client {_described(alert.client_id, names)} sent {alert.n_rows} queries between {alert.first_seen:%H:%M} and "
                f"{alert.last_seen:%H:%M} that look like probing of the model: "
                f"{', '.join(_REASONS.get(r, r) for r in alert.reasons)}"
            ),
            evidence={"client_id": alert.client_id,
                      "client_name": None if alert.client_id is None else names.get(alert.client_id, alert.client_id),
                      **alert.to_dict()},
        ))
    return found


#: What each extraction signal says about a client's queries, for the finding's summary.
_REASONS = {
    "support": "off the data (support)",
    "boundary": "crowding the decision boundary (boundary)",
    "grid": "one feature varied at a time (grid)",
    "spread": "packed or spread unlike real cases (spread)",
}


#: Per window start, per model version, each client's flagged and scored predictions.
EvasionCounts = Sequence[tuple[datetime, Mapping[int, Mapping[str, tuple[int, int]]]]]


def evasion_counts_of(time_windows: Sequence[tuple[datetime, pd.DataFrame]]) -> list[
        tuple[datetime, dict[int, dict[str, tuple[int, int]]]]]:
    """Each window's evasion counts per version and client (the anonymous client as ``""``), from its rows."""
    out = []
    for start, rows in time_windows:
        if "__adversarial" not in rows:
            continue
        scored = rows[rows["__adversarial"].notna()]
        per_version: dict[int, dict[str, tuple[int, int]]] = {}
        for (number, client), flags in scored["__adversarial"].astype(bool).groupby(
                [scored["__version"], scored["__client_id"].fillna("")]):
            per_version.setdefault(int(number), {})[str(client)] = (int(flags.sum()), len(flags))
        out.append((start, per_version))
    return out


def evasion_findings(
    store: Store,
    registry: Registry,
    name: str,
    counts: EvasionCounts,
    *,
    length: timedelta | None,
    drifted_windows: set[datetime],
    fpr: float,
    alpha: float,
    probes: Sequence[Finding],
) -> tuple[list[Finding], list[Finding]]:
    """Clients whose predictions the evasion score flags well above its calibrated rate, above
    the other clients' rate and above their own history, in every window.

    Each client is judged on its own: a window whose inputs drifted is tested like any other,
    since the drift may be the attacker's own traffic; a drift of everyone's inputs raises
    every client's rate and so is no client's excess over the others. A client's history is
    its flags in the earlier windows of the range in which it was not a suspect, so an attack
    never becomes part of its normal. ``drifted_windows`` only marks the evidence.

    Returns the evasion findings and the probing findings, the latter with the evasion test
    of their client and window added: a probing client is one incident, not two. A client named
    for probing on the boundary signal alone that is also an evasion suspect is reported as
    evasion, with the probing evidence added: crafted inputs stop just across the boundary, and
    what tells a mapping of the model apart (queries off the data, on a lattice, packed) is
    missing.
    """
    from loopwatch.detectors.evasion_rates import evasion_by_client_counts

    if length is None:
        return [], list(probes)
    names = key_names(store)
    probing = {(p.window_start, p.evidence.get("client_id")): i for i, p in enumerate(probes)}
    probes = list(probes)
    evading: set[int] = set()  # probes reported as evasion instead
    found = []
    history: dict[tuple[int, str], tuple[int, int]] = {}
    for start, per_version in counts:
        for number, flags in sorted(per_version.items()):
            detector = _detector(registry, name, int(number))
            if detector is None or not flags:
                continue
            k_calibration, n_calibration = detector.calibration_counts(fpr)
            past: dict[str | None, tuple[int, int]] = {
                client: history.get((int(number), client), (0, 0)) for client in flags}
            mine: dict[str | None, tuple[int, int]] = {client: pair for client, pair in flags.items()}
            tested = evasion_by_client_counts(mine, k_calibration=k_calibration, n_calibration=n_calibration,
                                              history=past, alpha=alpha)
            suspects = {c.client_id for c in tested if c.suspect}
            for who, (flagged, scored) in flags.items():
                if who not in suspects:
                    k, n = past[who]
                    history[(int(number), who)] = (k + flagged, n + scored)
            for client in tested:
                client_id = client.client_id or None
                probe = probing.get((start, client_id))
                if probe is not None and not (client.suspect and probes[probe].evidence.get("reasons") == ["boundary"]):
                    probes[probe] = replace(probes[probe],
                                            evidence={**probes[probe].evidence, "evasion": client.to_dict()})
                    continue
                if not client.suspect:
                    continue
                also = ""
                if probe is not None:
                    evading.add(probe)
                    also = "; its queries also crowd the decision boundary"
                found.append(Finding(
                    kind="adversarial_evasion",
                    window_start=start,
                    window_end=start + length,
                    available_at=start + length,
                    severity=min(1.0, client.rate),
                    summary=(
                        f"client {_described(client_id, names)}: {client.n_flagged} of {client.n_rows} inputs "
                        f"({client.rate:.1%}) flagged as adversarial, against {client.calibrated_rate:.1%} on "
                        f"clean reference rows and {_share(client.others_rate)} for the other clients{also}"
                    ),
                    evidence={"client_id": client_id, "client_name": names.get(client_id or "", client_id),
                              "model_version": int(number), "window_drifted": start in drifted_windows,
                              **client.to_dict(),
                              **({"probing": _probing_evidence(probes[probe])} if probe is not None else {})},
                ))
    return found, [p for i, p in enumerate(probes) if i not in evading]


def _probing_evidence(probe: Finding) -> dict[str, Any]:
    keep = ("score", "threshold", "reasons", "signals", "thresholds", "n_rows", "first_seen", "last_seen")
    return {k: probe.evidence[k] for k in keep if k in probe.evidence}


def window_evasion(registry: Registry, name: str, version: int, rows: pd.DataFrame, *, fpr: float
                   ) -> dict[str, float] | None:
    """The window's flagged share against the calibration rows' (None when nothing was scored)."""
    flags = rows["__adversarial"].dropna() if "__adversarial" in rows else rows.iloc[:0]
    return evasion_of_counts(registry, name, version, flagged=int(flags.astype(bool).sum()), scored=len(flags),
                             fpr=fpr)


def evasion_of_counts(registry: Registry, name: str, version: int, *, flagged: int, scored: int, fpr: float
                      ) -> dict[str, float] | None:
    """:func:`window_evasion` from the window's counts (a window summary's)."""
    from loopwatch.stats.rates import rate_test

    detector = _detector(registry, name, version) if scored else None
    if detector is None:
        return None
    k_calibration, n_calibration = detector.calibration_counts(fpr)
    test = rate_test(flagged, scored, k_calibration, n_calibration)
    return {"n_scored": scored, "rate": test.rate, "calibrated_rate": test.expected_rate,
            "p_value": test.p_value, "n_calibration": n_calibration}


def _detector(registry: Registry, name: str, version: int) -> Any:
    try:
        # the training profile's detector: the one that scored the predictions
        return registry.profile(name, version, training=True).adversarial
    except LoopwatchError:  # no profile, or one whose hash does not match (an integrity alarm elsewhere)
        return None


def _share(rate: float | None) -> str:
    return "no other traffic" if rate is None else f"{rate:.1%}"


def poisoning_findings(
    store: Store, registry: Registry, name: str, *, since: datetime | None, until: datetime, window: str
) -> list[Finding]:
    """One finding per feedback source and window of label arrival whose labels skew against the
    other sources', dated by the end of that window: before any retraining can read them.

    Every label as it was sent counts, corrected ones too: a poisoned label that an honest
    source later corrects is no longer the row's current label, but it was sent.
    """
    from loopwatch.application.monitoring.windows import WindowSpec
    from loopwatch.poisoning.sources import source_skew_test
    from loopwatch.application.quarantine import _served_predictions

    spec = WindowSpec.parse(window)
    sent = list(store.iter_label_revisions(name, since=since, until=until))
    if not sent or spec.length is None or len({label.client_id for label in sent}) < 2:
        return []
    served = _served_predictions(store, name, sent)
    names = key_names(store)
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
                summary=(f"labels from source {_described(suspect.source, names)} disagree with the served predictions "
                         f"{suspect.disagreement:.0%} of the time against {suspect.disagreement_others:.0%} "
                         "for the other sources"),
                evidence={"source": suspect.source, "source_name": names.get(suspect.source, suspect.source),
                          **suspect.to_dict()},
            ))
    return found


def key_names(store: Store) -> dict[str, str]:
    """Key id -> key name. With auth on, a request's client id is its key's id, which says
    nothing to a person reading an incident; the name given at ``keys create`` does."""
    return {key.key_id: key.name for key in store.list_api_keys()}


def _described(client_id: str | None, names: dict[str, str]) -> str:
    name = names.get(client_id or "")
    return f"{client_id}" if name is None else f"key {name!r} ({client_id})"
