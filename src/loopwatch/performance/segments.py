"""Calibration by segment: how far a window's mix can take the truth from its calibrated probabilities.

A calibrator maps a model's score to the share of positives among the
holdout's rows with that score. It holds for the holdout's mix of inputs.
Within one segment of the inputs (one carrier, the evening flights) the share
at a given score can differ, when the model is calibrated on average but not
segment by segment. A window that holds the holdout's mix averages those
differences out; a window that over-represents a segment inherits its
miscalibration, which no score can reveal. Under covariate shift on real data
this, not the calibrator's own error, was what left realized values outside
the interval (2013 flights, chunks of 5,000 rows: 78% inside, and calibrators
fitted on 100,000 production rows did no better).

So the holdout measures it, per input column:

* The column's segments: each value of a column with few distinct values
  (categories, codes, small counts), quantile bins of the others, and one
  segment for missing values and rare or unseen ones. Each segment is split
  by the predicted class (a cell), since the two sides of the threshold can
  be off in opposite directions.
* Per cell, the residual ``e = mean(y - q)`` of the holdout's rows, ``q`` the
  cross-fitted calibrated probability (from calibrators that never saw the
  row), and its sampling variance ``s^2 = sum(q (1 - q)) / n^2``.

In the interval's simulation each draw moves the probabilities of the
window's rows in a cell by an offset ``Z * r + Z_cell * s``: ``r`` the
residual less its noise, ``sign(e) * sqrt(max(e^2 - s^2, 0))``, times one
normal ``Z`` shared by the column's cells, so that cells the holdout saw
off in the same direction move together (drawn independently, they cancelled:
a window of a segment off on both sides of the threshold stayed inside 47% of
the time); and ``s`` times a normal of the cell's own, what the holdout's few
rows of the cell cannot pin down. The offsets are centred so that the
holdout's own mix moves by nothing within each group of rows with like scores
(eight quantile bins of the score, each split by the predicted class): the
calibrator holds there by construction, and centred only per predicted class,
the offsets still reshuffled the soft labels between low and high scores and
doubled the width of the AUC interval of windows drawn like the holdout. A
window with the holdout's mix keeps nearly the interval it had, a window made
of a few segments gets the uncertainty of those segments' calibration. A cell the
holdout never saw gets the column's mean squared residual as its spread.
The estimate itself does not move: the residuals of overlapping columns
(a destination and its distance) would count twice in a correction, where in
a spread they only widen.

Columns overlap (a destination and its distance shift together), so their
offsets are scaled to give the window's accuracy the variance of the column
that gives it most, not the sum of all of theirs.

The calibrator's own fit is one more column, not centred, with a single
segment split by the predicted class: where the calibrator cannot follow the
holdout on one side of the threshold (a sigmoid on a random forest's scores),
every window inherits the misfit. Only the residual beyond sampling counts
there, since the bootstrap calibrators carry the sampling error already.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A column with at most this many distinct values in the holdout has a segment per value.
MAX_LEVELS = 32
#: Quantile bins of a column with more distinct values.
BINS = 8
#: Holdout rows a value needs for a segment of its own; rarer values share the "other" segment.
MIN_ROWS = 30


@dataclass(frozen=True)
class _Column:
    index: int
    levels: np.ndarray | None  # values with a segment each, sorted
    edges: np.ndarray | None  # inner bin edges of a binned column
    residual: np.ndarray  # per cell (segment * 2 + predicted class): the part shared by the column's draws
    spread: np.ndarray  # per cell: the sd of the part drawn on its own
    reference_share: np.ndarray  # (groups, cells): each cell's share of the holdout's rows of a group

    @property
    def n_segments(self) -> int:
        if self.levels is not None:
            return len(self.levels) + 1
        assert self.edges is not None
        return len(self.edges) + 2

    def segment(self, values: np.ndarray) -> np.ndarray:
        """Each value's segment; the last one holds missing values, and rare or unseen levels."""
        other = self.n_segments - 1
        missing = np.isnan(values)
        if self.levels is not None:
            if len(self.levels) == 0:
                return np.full(len(values), other)
            at = np.clip(np.searchsorted(self.levels, values), 0, len(self.levels) - 1)  # NaN sorts last
            return np.where(~missing & (self.levels[at] == values), at, other)
        assert self.edges is not None
        return np.where(missing, other, np.searchsorted(self.edges, np.where(missing, 0.0, values), side="right"))


@dataclass(frozen=True)
class SegmentCalibration:
    """Per column, the calibration residuals of each cell (segment x predicted class); ``score_edges``
    cut the scores into the groups (bin x predicted class) within which offsets are centred."""

    columns: tuple[_Column, ...]
    n_features: int
    score_edges: np.ndarray
    centred: bool = True

    def cells(self, matrix: np.ndarray, predicted: np.ndarray) -> list[np.ndarray]:
        """Each row's cell, one array per column with a measured residual."""
        return [c.segment(matrix[:, c.index]) * 2 + predicted for c in self.columns]

    def groups(self, scores: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """Each row's group: its bin of the positive class's score, and its predicted class."""
        cells: np.ndarray = np.searchsorted(self.score_edges, scores, side="right") * 2 + predicted
        return cells

    def offsets(
        self, cells: list[np.ndarray], groups: np.ndarray, predicted: np.ndarray, size: int,
        rng: np.random.Generator,
    ) -> np.ndarray:
        """``size`` draws of the rows' probability offsets, ``(size, n)`` (see the module's docstring)."""
        out = np.zeros((size, len(predicted)))
        variances = []
        for column, cell in zip(self.columns, cells):
            draw = rng.standard_normal((size, 1)) * column.residual
            draw = draw + rng.standard_normal((size, len(column.spread))) * column.spread
            out += draw[:, cell]
            if self.centred:
                out -= (draw @ column.reference_share.T)[:, groups]
            variances.append(self._accuracy_variance(column, cell, groups, predicted))
        total = sum(variances)
        return out * np.sqrt(max(variances) / total) if total > 0 else out

    def _accuracy_variance(
        self, column: _Column, cell: np.ndarray, groups: np.ndarray, predicted: np.ndarray
    ) -> float:
        """The variance one column's offsets give the window's accuracy: a row's offset raises
        its probability of being right if it is predicted positive, and lowers it if not."""
        k = len(column.residual)
        apart = np.bincount(cell, minlength=k) / len(cell)
        if self.centred:
            in_group = np.bincount(groups, minlength=column.reference_share.shape[0]) / len(groups)
            apart = apart - in_group @ column.reference_share
        sign = np.where(np.arange(k) % 2 == 1, 1.0, -1.0)
        return float(np.sum(apart * sign * column.residual) ** 2 + np.sum((apart * column.spread) ** 2))


def fit_segments(
    matrix: np.ndarray, outcome: np.ndarray, calibrated: np.ndarray, predicted: np.ndarray,
    scores: np.ndarray, *, centred: bool = True,
) -> SegmentCalibration:
    """Measure each column's calibration residuals on the holdout: ``matrix`` its encoded inputs
    (NaN missing), ``outcome`` 0/1 of the positive class, ``calibrated`` the cross-fitted
    calibrated probability of the positive class, ``predicted`` 0/1 the positive class served,
    ``scores`` the model's probability of the positive class. ``centred``: columns of inputs,
    whose holdout mix cancels in every group of scores; not: the calibrator's own fit, whose
    sampling error the bootstrap calibrators carry already (no spread of a cell's own)."""
    residual = outcome - calibrated
    noise = calibrated * (1 - calibrated)
    score_edges = np.unique(np.quantile(scores, np.linspace(0, 1, BINS + 1)[1:-1])) if centred else np.empty(0)
    groups = np.searchsorted(score_edges, scores, side="right") * 2 + predicted
    n_groups = (len(score_edges) + 1) * 2
    columns = []
    for j in range(matrix.shape[1]):
        values = matrix[:, j]
        seen = values[~np.isnan(values)]
        distinct, counts = np.unique(seen, return_counts=True)
        if len(distinct) <= MAX_LEVELS:
            levels, edges = distinct[counts >= MIN_ROWS], None
        else:
            levels, edges = None, np.unique(np.quantile(seen, np.linspace(0, 1, BINS + 1)[1:-1]))
        empty = np.empty(0)
        cell = _Column(j, levels, edges, empty, empty, empty).segment(values) * 2 + predicted
        k = (len(levels) + 1 if levels is not None else len(edges) + 2) * 2  # type: ignore[arg-type]
        n = np.bincount(cell, minlength=k).astype(np.float64)
        filled = n > 0
        mean = np.divide(np.bincount(cell, weights=residual, minlength=k), n, out=np.zeros(k), where=filled)
        sampling = np.divide(np.bincount(cell, weights=noise, minlength=k), n**2, out=np.zeros(k), where=filled)
        beyond_noise = np.sign(mean) * np.sqrt(np.maximum(mean**2 - sampling, 0.0))
        if centred:
            spread = np.where(filled, np.sqrt(sampling), np.sqrt(np.mean(mean[filled] ** 2)))
        else:
            spread = np.zeros(k)
            if not beyond_noise.any():
                continue  # the calibrator follows the holdout on both sides, as far as it can tell
        joint = np.bincount(groups * k + cell, minlength=n_groups * k).reshape(n_groups, k).astype(np.float64)
        per_group = joint.sum(axis=1, keepdims=True)
        share = np.divide(joint, per_group, out=np.zeros_like(joint), where=per_group > 0)
        columns.append(_Column(j, levels, edges, beyond_noise, spread, share))
    return SegmentCalibration(tuple(columns), matrix.shape[1], score_edges, centred)
