"""The contract of the detector family: outlier, novelty, evasion and extraction detectors.

Every detector of :mod:`loopwatch.detectors` that judges data against a reference keeps
one small contract (scikit-learn's and river's conventions):

- parameters are keyword-only and stored as given in ``__init__`` (so ``get_params``,
  ``set_params`` and ``sklearn.base.clone``, which gives an unfitted copy, work);
- ``fit(...)`` returns the detector, and everything it learns ends in ``_``;
- a score per unit it judges (a row, or a client's set of queries), **higher = more
  suspicious**;
- a threshold calibrated on held-out reference data at the false-alarm rate it states
  (:attr:`Detector.stated_rate`): ``threshold_``, or one per signal in ``thresholds_``;
- the calibration counts a rate test needs (:meth:`Detector.calibration_counts`: how many
  calibration units lie above the threshold, of how many; see
  :func:`loopwatch.stats.rates.rate_test`);
- a decision, ``predict``: True for what is flagged;
- randomness only through one seed parameter (:attr:`Detector.seed_parameter` names it):
  the same seed gives the same scores;
- fitted state is plain attributes, numpy arrays and scikit-learn estimators, so a fitted
  detector round-trips through skops with the same scores and thresholds.

What each is fitted on differs, and so does what ``fit``, the score and ``predict`` take:

================================  ==============================  =================================
detector                          ``fit``                         score, decision
================================  ==============================  =================================
outlier and novelty               ``(x_fit, x_calibration)``      ``score_samples(x)``,
(:mod:`~.base`)                   float matrices                  ``predict(x)`` per row
evasion (:mod:`~.adversarial`)    ``(x_fit, x_calibration, *,     ``score_samples(x, model=)``,
                                  model)`` frames and the model   ``predict(x, model=)`` per row
extraction (:mod:`~.extraction`)  ``(reference, *,                ``score(frame, proba).score``,
                                  probabilities=None)`` a frame   ``predict(frame, proba)`` per client
================================  ==============================  =================================

so the contract is a :class:`typing.Protocol`, checked by structure, not a base class:
one base could not give the three one ``fit`` without hiding what each needs, and
detectors already stored in model versions' profiles keep their classes unchanged.
``tests/detectors/test_conformance.py`` holds every member to it, with one way per
detector to build its fit data.

>>> from loopwatch.detectors import FAMILY, IsolationForestDetector
>>> isinstance(IsolationForestDetector(), Detector), sorted(FAMILY)
(True, ['adversarial', 'elliptic_envelope', 'extraction', 'isolation_forest', 'novelty'])
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol, Self, runtime_checkable


@runtime_checkable
class Detector(Protocol):
    """A detector of the family (see the module docstring for the whole contract)."""

    #: The name used in reports.
    name: ClassVar[str]
    #: The parameter that seeds every random draw (``random_state`` or ``seed``).
    seed_parameter: ClassVar[str]

    def fit(self, *args: Any, **kwargs: Any) -> Self:
        """Learn from the reference, calibrate the threshold(s), return the detector."""
        ...

    def predict(self, *args: Any, **kwargs: Any) -> Any:
        """True for what is flagged (a row, or a client's set of queries)."""
        ...

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """The parameters, as given (scikit-learn's)."""
        ...

    @property
    def stated_rate(self) -> float:
        """The false-alarm rate the threshold is calibrated at, on reference-like data."""
        ...

    def calibration_counts(self) -> tuple[int, int]:
        """How many calibration units lie above the threshold, and how many there are."""
        ...
