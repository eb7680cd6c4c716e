"""Name the most likely kind of each incident from its evidence.

The rules, in the order they are tried for a window whose inputs drifted:

1. **software change**: the drift is concentrated in events served by software
   (a client version, a model version, a fingerprint) that no earlier window saw;
2. **sampling or selection-bias change**: the mix of the segment feature moved,
   or segments never seen in training appear;
3. **data change (covariate shift)**: anything else the inputs show.

Independently of the inputs, a window whose runtime percentile exceeds the
model's budget is a **latency regression** when it lines up with a new model version, or
when the window before was over budget too (a single slow window is a spike). From the labels, a **concept drift**
is a rise of the loss stream (a river detector, in label-arrival order) while
the label-free estimate holds, that is when realized performance departs from
what the inputs predicted.
"""

from __future__ import annotations

from loopwatch.loops.evidence import LabelEvidence, WindowEvidence, describe_software
from loopwatch.loops.report import Finding


def diagnose_window(evidence: WindowEvidence, *, tolerance: float = 0.03) -> list[Finding]:
    """The findings of one window (at most one input finding and one latency finding)."""
    findings: list[Finding] = []
    latency = _latency(evidence)
    if latency is not None:
        findings.append(latency)
    if evidence.input_drift:
        findings.append(_input_finding(evidence, tolerance))
    return findings


def _latency(e: WindowEvidence) -> Finding | None:
    # written as "not above" so that a NaN percentile (no runtimes) is no evidence of a regression
    if e.latency_budget_ms is None or e.latency_ms is None or not e.latency_ms > e.latency_budget_ms:
        return None
    changes = [s.to_dict() for s in e.software_changes if s.what in ("model_version", "fingerprint")]
    if not changes and not e.latency_over_budget_before:
        return None  # one slow window on its own is a spike of the machine, not a regression
    lined_up = f", lined up with {describe_software(changes[0])}" if changes else ""
    return Finding(
        kind="latency_regression",
        window_start=e.start,
        window_end=e.end,
        available_at=e.end,
        severity=e.latency_ms / e.latency_budget_ms,
        summary=(
            f"p{e.latency_percentile:g} runtime {e.latency_ms:.1f} ms exceeds the budget of "
            f"{e.latency_budget_ms:g} ms{lined_up}"
        ),
        evidence={
            "latency_ms": round(e.latency_ms, 2),
            "budget_ms": e.latency_budget_ms,
            "percentile": e.latency_percentile,
            "model_versions": e.model_versions,
            "software_changes": changes,
        },
    )


def _input_finding(e: WindowEvidence, tolerance: float) -> Finding:
    ranked = e.weighted_drift()
    top = list(ranked)[:5]
    severity = sum(ranked.values()) if ranked else 0.0
    common = {
        "drifted_features": {f: round(e.drifted_features[f], 4) for f in top},
        "weighted_drift": {f: round(ranked[f], 4) for f in top},
        "multivariate_drift": e.multivariate_drift,
        "quality_alarms": e.quality_alarms,
        "estimate_dropped": e.estimate_dropped(tolerance),
    }
    culprit = next((s for s in e.software_changes if s.features), None)
    if culprit is not None:
        return Finding(
            kind="software_change",
            window_start=e.start,
            window_end=e.end,
            available_at=e.end,
            severity=max(severity, culprit.share),
            summary=(
                f"{', '.join(culprit.features)} changed in the {culprit.share:.0%} of events from "
                f"{describe_software(culprit.to_dict())}, {_first_seen(culprit.windows_since_first)}, "
                "and not in the rest"
            ),
            evidence={**common, "software_change": culprit.to_dict()},
        )
    segment_moved = e.segment_feature is not None and bool(
        e.new_segments or e.segment_drift or e.segment_feature in e.drifted_features
    )
    if segment_moved:
        new = ", ".join(f"{k} ({v:.0%})" for k, v in e.new_segments.items())
        what = f"new segments {new}" if new else "a changed mix"
        return Finding(
            kind="selection_bias",
            window_start=e.start,
            window_end=e.end,
            available_at=e.end,
            severity=max(severity, sum(e.new_segments.values())),
            summary=f"the {e.segment_feature} mix of scored traffic moved: {what}",
            evidence={**common, "segment_feature": e.segment_feature, "new_segments": e.new_segments},
        )
    names = ", ".join(top) if top else "the joint distribution"
    return Finding(
        kind="covariate_shift",
        window_start=e.start,
        window_end=e.end,
        available_at=e.end,
        severity=severity,
        summary=f"inputs moved: {names}",
        evidence={**common, "estimated": None if e.estimated is None else e.estimated.to_dict(), "holdout": e.holdout, "metric": e.metric},
    )


def _first_seen(windows: int) -> str:
    if windows == 0:
        return "first seen in this window"
    return f"first seen {windows} window{'s' if windows > 1 else ''} earlier"


def diagnose_labels(labels: LabelEvidence, *, tolerance: float) -> list[Finding]:
    """A concept drift when the loss stream rose and realized performance departs from the
    label-free estimate (so the inputs do not explain the fall)."""
    if labels.concept_drift_at is None or labels.concept_drift_prediction_time is None:
        return []
    if labels.loss_before is None or labels.loss_after is None or labels.loss_after <= labels.loss_before:
        return []  # the detector saw the loss fall: good news is not an incident
    if labels.inputs_drifted_then:
        return []  # the inputs moved when those predictions were made: not a concept drift
    realized, estimated = labels.realized_after, labels.estimated_after
    departs = True
    if realized is not None and estimated is not None:
        # how much worse realized is than estimated, in the metric's own direction
        if labels.higher_is_better:
            gap = estimated.value - realized.value
            apart = realized.ci_high < estimated.ci_low
        else:
            gap = realized.value - estimated.value
            apart = realized.ci_low > estimated.ci_high
        departs = gap > tolerance or apart
    if not departs:
        return []
    when = labels.concept_drift_prediction_time
    return [
        Finding(
            kind="concept_drift",
            window_start=when,
            window_end=labels.concept_drift_at,
            available_at=labels.concept_drift_at,
            severity=labels.loss_after - labels.loss_before,
            summary=(
                f"the {labels.detector} detector saw the loss rise from {labels.loss_before:.3f} to "
                f"{labels.loss_after:.3f} on predictions from {when:%Y-%m-%d}; realized {labels.metric} "
                "departs from the label-free estimate, so the inputs do not explain it"
            ),
            evidence=labels.to_dict(),
        )
    ]
