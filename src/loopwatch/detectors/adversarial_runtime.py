"""The adversarial detector in a model's life: fitted when a version is trained, run on
every prediction.

Training fits it on the version's training rows and calibrates it on the
holdout (:func:`fit_for_model`); it is kept in the version's reference profile.
Prediction scores each request's rows with it (:class:`ProbedModel`, in the
same model call as the answer, else :func:`score_rows`) and logs
each row's score and flag in the row's input summary, so windows of events can
be compared with the calibration rows like any other detector's
(:meth:`~loopwatch.detectors.adversarial.AdversarialDetector.window_test`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.detectors.adversarial import MIN_CALIBRATION_ROWS, AdversarialDetector

#: Most rows a trained version's detector is fitted on, and calibrated on.
MAX_FIT_ROWS = 5_000
MAX_CALIBRATION_ROWS = 20_000
#: Decimals of a logged score: enough to rank, short in the log.
SCORE_DECIMALS = 4


def fit_for_model(
    model: Any,
    x_fit: pd.DataFrame,
    x_calibration: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    seed: int,
    expected_rate: float = 0.01,
) -> AdversarialDetector | None:
    """The detector a trained version keeps: fitted on (a seeded sample of) its training
    rows, calibrated on its holdout; ``None`` when the holdout has fewer than
    :data:`~loopwatch.detectors.adversarial.MIN_CALIBRATION_ROWS` rows."""
    if len(x_calibration) < MIN_CALIBRATION_ROWS or len(x_fit) < 10:
        return None
    rng = np.random.default_rng(seed)

    def sample(frame: pd.DataFrame, most: int) -> pd.DataFrame:
        if len(frame) <= most:
            return frame
        return frame.iloc[np.sort(rng.choice(len(frame), size=most, replace=False))]

    detector = AdversarialDetector(
        numeric=tuple(numeric), categorical=tuple(categorical), expected_rate=expected_rate, random_state=seed
    )
    return detector.fit(sample(x_fit, MAX_FIT_ROWS), sample(x_calibration, MAX_CALIBRATION_ROWS), model=model)


@dataclass(frozen=True)
class RowScore:
    """One row's adversarial score (``None`` when the model cannot even be probed) and flag."""

    score: float | None
    flagged: bool

    def to_dict(self) -> dict[str, Any]:
        return {"adversarial_score": self.score, "adversarial": self.flagged}


def score_rows(detector: AdversarialDetector, frame: pd.DataFrame, *, model: Any, fpr: float) -> list[RowScore]:
    """Each row's score and whether it lies above the threshold for ``fpr``.

    A row whose probes the model refuses (values so extreme that scaling them
    overflows), or whose score is not finite, is as far from the training data
    as a row can be: it is flagged, with no score. One such row does not cost
    the others their scores.
    """
    try:
        scores = detector.score_samples(frame, model=model)
    except ValueError:
        if len(frame) == 1:
            return [RowScore(None, True)]
        return [score_rows(detector, frame.iloc[[i]], model=model, fpr=fpr)[0] for i in range(len(frame))]
    return _row_scores(scores, detector.threshold_for(fpr))


class ProbedModel:
    """A request's model with the detector's probes riding along in its one call.

    ``predict_proba`` (or ``predict``, for a regressor) answers for the rows it
    is given, exactly as the model would, but calls the model once on those
    rows stacked with the probes of the request's raw rows, so the adversarial
    score costs no second pass through the pipeline; :meth:`scores` then reads
    the probes' outputs. If the stacked call fails (a probe of an extreme
    value), the model is called on its rows alone, so the caller sees the
    model's own answer or refusal, and the scores are computed on their own.
    """

    def __init__(self, detector: AdversarialDetector, model: Any, raw: pd.DataFrame, *, fpr: float) -> None:
        self.detector = detector
        self.model = model
        self.raw = raw
        self.fpr = fpr
        self._probe_outputs: np.ndarray | None = None

    def predict_proba(self, rows: pd.DataFrame) -> np.ndarray:
        return self._call("predict_proba", rows)

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        return self._call("predict", rows)

    def _call(self, method: str, rows: pd.DataFrame) -> np.ndarray:
        answer = getattr(self.model, method)
        if method != ("predict_proba" if self.detector.probabilistic_ else "predict"):
            return np.asarray(answer(rows))
        # the probes start with the raw rows: without defences, those are the model's rows
        alone = rows is self.raw
        try:
            outputs = np.asarray(answer(self.detector.probe_frame(self.raw, head=None if alone else rows)))
        except ValueError:
            return np.asarray(answer(rows))
        n = len(rows)
        self._probe_outputs = outputs if alone else outputs[n:]
        return outputs[:n]

    def scores(self) -> list[RowScore]:
        """Each raw row's score and flag (see :func:`score_rows`)."""
        if self._probe_outputs is None:
            return score_rows(self.detector, self.raw, model=self.model, fpr=self.fpr)
        scores = self.detector.scores_from_outputs(self.raw, self._probe_outputs)
        return _row_scores(scores, self.detector.threshold_for(self.fpr))


def _row_scores(scores: np.ndarray, threshold: float) -> list[RowScore]:
    return [
        RowScore(round(float(s), SCORE_DECIMALS), bool(s > threshold)) if math.isfinite(s) else RowScore(None, True)
        for s in scores
    ]
