"""What the extraction detector measures of one client's queries (:class:`QueryFeatures`)
and what it concludes (:class:`ExtractionScore`): typed results, serialised only at the edge.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

#: The signals, in the order they are reported.
SIGNALS = ("boundary", "grid", "spread", "support")


@dataclass(frozen=True, kw_only=True)
class QueryFeatures:
    """What one client's queries in a window look like (``None``: not computable)."""

    n_rows: int
    n_distinct: int
    near_boundary_share: float | None
    expected_near_boundary_share: float | None
    neighbour_share: float | None
    step_regularity: float | None
    step_entropy: float | None
    #: Median nearest-neighbour distance over the reference's at the same size, with the
    #: features (all, or all but one) that bring it closest to 1.
    spread_ratio: float | None
    #: The same with every feature.
    spread_ratio_all_features: float | None = None
    #: The feature left out for ``spread_ratio`` (``None``: none was).
    spread_left_out: str | None = None
    #: Distinct rows the one-feature neighbours were counted on (a random draw of at most
    #: ``max_grid_rows``), and the reference's ``grid`` statistic at that many rows.
    grid_rows: int | None = None
    expected_grid: float | None = None
    #: Share of the (at most ``max_spread_rows``) distinct rows farther from every reference
    #: row than the reference's own held-out rows ever are (all but ``support_quantile`` of
    #: them), with the features (all, or all but one) that bring it lowest.
    off_support_share: float | None = None
    expected_off_support_share: float | None = None
    #: The feature left out for ``off_support_share`` (``None``: none was).
    support_left_out: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def statistics(self) -> dict[str, float]:
        """The statistic behind each computable signal (what baselines are medians of).

        ``grid`` is the share of one-feature neighbours (weighted by step regularity) beyond
        the reference's at the same number of rows, since a larger sample of any table holds
        more of them, over ``max(1 - reference's, 0.5)``; ``spread`` is the log of the spread ratio.
        """
        out: dict[str, float] = {}
        if self.near_boundary_share is not None and self.expected_near_boundary_share is not None:
            out["boundary"] = self.near_boundary_share
        if self.neighbour_share is not None:
            grid = self.neighbour_share * (1.0 + (self.step_regularity or 0.0)) / 2.0
            expected = self.expected_grid or 0.0
            # beyond the reference's share, as a part of what it leaves; where the reference
            # itself is mostly twins (a table of a few discrete features) the twin share says
            # little, so the excess is never more than twice the plain difference
            out["grid"] = (grid - expected) / max(1.0 - expected, 0.5)
        if self.spread_ratio is not None:
            out["spread"] = math.log(max(self.spread_ratio, 1e-12))
        if self.off_support_share is not None:
            out["support"] = self.off_support_share
        return out


@dataclass(frozen=True, kw_only=True)
class ExtractionScore:
    """One client's signals, each signal's threshold, and the decision.

    ``signals`` holds each signal at its weakest over the baselines in ``against``
    (``reference``, and ``others`` and ``history`` when the client had them);
    ``score`` is the strongest signal over its threshold, and ``flagged`` needs
    ``score >= threshold`` (1) and at least ``min_rows`` rows.
    """

    client_id: str | None
    features: QueryFeatures
    signals: dict[str, float]
    thresholds: dict[str, float]
    score: float
    threshold: float
    flagged: bool
    against: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def reasons(self) -> tuple[str, ...]:
        """The signals at or above their thresholds, strongest (over its threshold) first."""
        strong = sorted(((v / self.thresholds[k], k) for k, v in self.signals.items()
                         if v >= self.thresholds[k]), key=lambda item: (-item[0], item[1]))
        return tuple(k for _, k in strong)

    def to_dict(self) -> dict[str, Any]:
        return {
            "client_id": self.client_id,
            "features": self.features.to_dict(),
            "signals": dict(self.signals),
            "thresholds": dict(self.thresholds),
            "against": {k: dict(v) for k, v in self.against.items()},
            "score": self.score,
            "threshold": self.threshold,
            "flagged": self.flagged,
            "reasons": list(self.reasons),
        }


def median_statistics(group: Sequence[QueryFeatures]) -> dict[str, float]:
    """Each statistic's median over the features of ``group`` that have it."""
    pooled: dict[str, list[float]] = {}
    for features in group:
        for name, value in features.statistics().items():
            pooled.setdefault(name, []).append(value)
    return {name: float(np.median(values)) for name, values in pooled.items()}
