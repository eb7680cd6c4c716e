"""How drift is decided: :class:`DriftConfig`, built once at the edge and handed to
:func:`~loopwatch.drift.compare.compare` and the monitors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

from loopwatch.errors import InvalidInput
from loopwatch.stats.practical import DEFAULT_BAND_ROWS, check_band_rows, check_overrides

NUMERIC_TESTS = ("ks", "wasserstein", "wasserstein_normed", "kl_divergence", "js_distance", "psi", "hellinger")
CATEGORICAL_TESTS = ("chi2", "kl_divergence", "js_distance", "psi", "hellinger")


@dataclass(frozen=True, kw_only=True)
class DriftConfig:
    """How drift is decided; every default is documented in docs/drift.md."""

    alpha: float = 0.05
    #: The statistic that decides a numeric / categorical feature.
    numeric_test: str = "ks"
    categorical_test: str = "chi2"
    correction: Literal["bh", "bonferroni"] = "bh"
    #: Practical thresholds set outright, by statistic (``wasserstein_normed``, ``js_distance``,
    #: ``pca_reconstruction``, ``pca_ks``, ``mmd``, ``domain_classifier``, ``outlier_rate``,
    #: ``evasion_rate``); any other statistic's is max(floor, reference band) (stats/practical.py).
    practical_thresholds: Mapping[str, float] = field(default_factory=dict)
    #: N0: window rows beyond which the reference band stops narrowing.
    practical_band_rows: int = DEFAULT_BAND_ROWS
    multivariate: bool = True
    outliers: bool = True
    mmd_permutations: int = 999
    mmd_max_samples: int = 500
    domain_max_samples: int = 2_000
    #: Boosting iterations of the domain classifier (fewer is faster, a little less sensitive).
    domain_iterations: int = 100
    #: Most current rows the outlier and novelty detectors score: a larger table is scored on a
    #: seeded random sample of this many rows, and its flagged share tested on that sample
    #: (``n_scored`` in the report). LOF costs about 80 us a row: scoring a million rows took
    #: 83 of the default run's 123 CPU seconds, while at 20,000 rows the binomial error of a 1%
    #: rate is already 0.07 points, under the smallest excess worth reporting.
    outlier_max_rows: int = 20_000
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise InvalidInput("alpha must be between 0 and 1")
        if self.numeric_test not in NUMERIC_TESTS:
            raise InvalidInput(f"numeric_test must be one of {', '.join(NUMERIC_TESTS)}")
        if self.categorical_test not in CATEGORICAL_TESTS:
            raise InvalidInput(f"categorical_test must be one of {', '.join(CATEGORICAL_TESTS)}")
        if self.correction not in ("bh", "bonferroni"):
            raise InvalidInput("correction must be bh or bonferroni")
        if isinstance(self.outlier_max_rows, bool) or not isinstance(self.outlier_max_rows, int) \
                or self.outlier_max_rows < 100:
            raise InvalidInput("outlier_max_rows must be an integer of at least 100")
        object.__setattr__(self, "practical_thresholds", check_overrides(self.practical_thresholds))
        check_band_rows(self.practical_band_rows)

    @property
    def family_alpha(self) -> dict[str, float]:
        if self.multivariate and self.outliers:
            return {"features": self.alpha / 2, "multivariate": self.alpha / 4, "outliers": self.alpha / 4}
        if self.multivariate or self.outliers:
            other = "multivariate" if self.multivariate else "outliers"
            return {"features": self.alpha / 2, other: self.alpha / 2}
        return {"features": self.alpha}

    def to_dict(self) -> dict[str, Any]:
        return ({k: getattr(self, k) for k in self.__dataclass_fields__}
                | {"practical_thresholds": dict(self.practical_thresholds), "family_alpha": self.family_alpha})
