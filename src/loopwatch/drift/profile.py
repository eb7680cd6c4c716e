"""The reference profile: everything drift detection needs from the reference, computed once.

Built at training time for every model version (and from any table), it keeps
for each numeric feature its sorted values (or a quantile summary with a stated
rank error when the reference is large), quantile bin edges and bin counts; for
each categorical feature its category counts; a fitted encoder, PCA basis and
outlier and novelty detectors, each calibrated on held-out reference rows; and
the null moments of every distance, from a two-sample bootstrap on the
reference, from which thresholds are derived. Computing drift never rereads or
re-sorts the reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.detectors import DETECTORS, OutlierDetector
from loopwatch.drift.encoding import FeatureEncoder
from loopwatch.errors import IntegrityError, InvalidInput, echo, listed
from loopwatch.features.frames import labels_of
from loopwatch.performance.reference import PerformanceReference
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.stats.binned import quantile_edges
from loopwatch.stats.calibration import NullCalibration, bootstrap_null, bootstrap_null_categorical
from loopwatch.stats.multivariate import PcaBasis
from loopwatch.stats.sketch import CategoricalSummary, NumericSummary

#: Share of reference rows held out to calibrate the PCA error and the detectors.
HOLDOUT_SHARE = 0.3
#: Most reference rows the detectors are fitted on, and kept for the MMD and domain tests.
MAX_FIT_ROWS = 5_000
#: Fewest fitting rows for outlier and novelty detectors.
MIN_DETECTOR_ROWS = 100
#: Most held-out rows the detectors' thresholds are calibrated on (a random share of the
#: holdout): at a 1% rate, 200 rows above the threshold, a binomial error of 0.07 points.
#: Scoring the whole holdout of a million-row reference took 25 CPU seconds.
MAX_CALIBRATION_ROWS = 20_000
#: Least rows a table needs to be a reference (its bins and bootstrap nulls need a sample).
MIN_REFERENCE_ROWS = 20
PROFILE_FORMAT = 1
#: Sample size of the bootstrap behind distance thresholds; thresholds for other
#: sizes are rescaled by each distance's known scaling law (stats/calibration.py).
NULL_SAMPLE_SIZE = 5_000
#: The distances that get a calibrated threshold.
DISTANCES = ("wasserstein", "wasserstein_normed", "kl_divergence", "js_distance", "psi", "hellinger")


@dataclass
class UnivariateProfile:
    """Per-column summaries, bins and distance nulls: what the univariate statistics read."""

    n: int
    numeric: dict[str, NumericSummary]
    categorical: dict[str, CategoricalSummary]
    edges: dict[str, np.ndarray]
    bins: dict[str, np.ndarray]
    nulls: dict[str, NullCalibration]

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "numeric": {k: v.to_dict() for k, v in self.numeric.items()},
            "categorical": {k: v.to_dict() for k, v in self.categorical.items()},
            "edges": {k: v.tolist() for k, v in self.edges.items()},
            "bins": {k: v.tolist() for k, v in self.bins.items()},
            "nulls": {k: v.to_dict() for k, v in self.nulls.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UnivariateProfile:
        return cls(
            n=int(data["n"]),
            numeric={k: NumericSummary.from_dict(v) for k, v in data["numeric"].items()},
            categorical={k: CategoricalSummary.from_dict(v) for k, v in data["categorical"].items()},
            edges={k: np.asarray(v, dtype=np.float64) for k, v in data["edges"].items()},
            bins={k: np.asarray(v, dtype=np.int64) for k, v in data["bins"].items()},
            nulls={k: NullCalibration.from_dict(v) for k, v in data["nulls"].items()},
        )

    @classmethod
    def build(
        cls,
        frame: pd.DataFrame,
        *,
        numeric: Sequence[str],
        categorical: Sequence[str],
        n_bins: int,
        max_points: int,
        n_boot: int,
        rng: np.random.Generator,
    ) -> UnivariateProfile:
        summaries: dict[str, NumericSummary] = {}
        edges: dict[str, np.ndarray] = {}
        bins: dict[str, np.ndarray] = {}
        nulls: dict[str, NullCalibration] = {}
        for name in numeric:
            summary = NumericSummary.from_values(numeric_values(frame, name), max_points=max_points)
            if summary.n == 0:
                raise InvalidInput(f"numeric column {echo(name)} has no values in the reference")
            summaries[name] = summary
            edges[name] = quantile_edges(summary.sorted_values, n_bins=n_bins)
            # counts of rows, not of summary points, when the reference was summarised
            bins[name] = np.asarray(summary.bin_counts(edges[name]), dtype=np.int64)
            nulls[name] = bootstrap_null(
                summary, min(summary.n, NULL_SAMPLE_SIZE), DISTANCES, rng=rng, n_boot=n_boot, n_bins=n_bins
            )
        counts: dict[str, CategoricalSummary] = {}
        for name in categorical:
            counts[name] = CategoricalSummary.from_values(category_values(frame, name))
            nulls[name] = bootstrap_null_categorical(
                counts[name].counts, min(max(counts[name].n, 1), NULL_SAMPLE_SIZE), rng=rng, n_boot=n_boot
            )
        return cls(n=len(frame), numeric=summaries, categorical=counts, edges=edges, bins=bins, nulls=nulls)


@dataclass
class JointProfile:
    """What the multivariate tests and the detectors need: encoder, PCA, held-out rows."""

    encoder: FeatureEncoder
    pca: PcaBasis
    holdout_errors: np.ndarray
    holdout_projections: np.ndarray
    sample: np.ndarray
    detectors: dict[str, OutlierDetector]


@dataclass
class ReferenceProfile:
    univariate: UnivariateProfile
    #: ``None`` when built for univariate comparisons only.
    joint: JointProfile | None
    #: The model's outputs on held-out rows, for prediction drift.
    outputs: UnivariateProfile | None = None
    config: dict[str, Any] = field(default_factory=dict)
    #: The holdout's labels and outputs, for performance estimation; ``None`` in profiles built
    #: without a model, and in those stored before loopwatch kept it.
    performance: PerformanceReference | None = None
    #: The version's fitted adversarial-input detector
    #: (:class:`loopwatch.detectors.adversarial.AdversarialDetector`); ``None`` in profiles
    #: built without a model, and in those stored before loopwatch kept it.
    adversarial: Any = None

    @property
    def n(self) -> int:
        return self.univariate.n

    @property
    def features(self) -> list[str]:
        return self.univariate.columns

    def to_bytes(self) -> bytes:
        import skops.io as sio

        joint = self.joint
        light = {
            "format": PROFILE_FORMAT,
            "univariate": self.univariate.to_dict(),
            "encoder": None if joint is None else joint.encoder.to_dict(),
            "pca": None if joint is None else joint.pca.to_dict(),
            "outputs": None if self.outputs is None else self.outputs.to_dict(),
            "config": self.config,
        }
        payload: dict[str, Any] = {}
        if self.performance is not None:
            light["performance"], payload["performance"] = self.performance.to_payload()
        payload["light"] = dumps(light).decode()
        if joint is not None:
            payload |= {
                "holdout_errors": joint.holdout_errors,
                "holdout_projections": joint.holdout_projections,
                "sample": joint.sample,
                "detectors": joint.detectors,
            }
        if self.adversarial is not None:
            payload["adversarial"] = self.adversarial
        data: bytes = sio.dumps(payload)
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> ReferenceProfile:
        import skops.io as sio

        untrusted = set(sio.get_untrusted_types(data=data))
        refused = sorted(t for t in untrusted if not _trusted(t))
        if refused:
            raise IntegrityError("reference profile holds untrusted types", detail={"types": refused})
        payload = sio.loads(data, trusted=sorted(untrusted))
        light = loads(payload["light"])
        if light.get("format") != PROFILE_FORMAT:
            raise IntegrityError(f"unknown reference profile format {echo(light.get('format'))}")
        joint = None
        if light["encoder"] is not None:
            joint = JointProfile(
                encoder=FeatureEncoder.from_dict(light["encoder"]),
                pca=PcaBasis.from_dict(light["pca"]),
                holdout_errors=np.asarray(payload["holdout_errors"]),
                holdout_projections=np.asarray(payload["holdout_projections"]),
                sample=np.asarray(payload["sample"]),
                detectors=dict(payload["detectors"]),
            )
        performance = None
        if light.get("performance") is not None:  # absent from profiles stored before it existed
            performance = PerformanceReference.from_payload(light["performance"], payload.get("performance") or {})
        return cls(
            univariate=UnivariateProfile.from_dict(light["univariate"]),
            joint=joint,
            outputs=None if light["outputs"] is None else UnivariateProfile.from_dict(light["outputs"]),
            config=light["config"],
            performance=performance,
            adversarial=payload.get("adversarial"),  # absent from profiles stored before it existed
        )


#: Type prefixes a stored profile may build: our detectors and what they are made of.
_TRUSTED_PREFIXES = ("loopwatch.detectors.", "sklearn.", "numpy.", "scipy.")


def _trusted(type_name: str) -> bool:
    return type_name.startswith(_TRUSTED_PREFIXES)


def split_columns(
    frame: pd.DataFrame, *, categorical: Sequence[str] | None = None, exclude: Sequence[str] = ()
) -> tuple[list[str], list[str]]:
    """Numeric and categorical columns: numeric dtypes are numeric unless named categorical."""
    named = set(categorical or ())
    unknown = named - set(frame.columns)
    if unknown:
        raise InvalidInput(f"unknown columns named categorical: {listed(sorted(map(str, unknown)))}")
    numeric: list[str] = []
    cats: list[str] = []
    for name in frame.columns:
        if name in exclude:
            continue
        column = frame[name]
        is_number = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        (numeric if is_number and name not in named else cats).append(str(name))
    return numeric, cats


def numeric_values(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A numeric column as float64 with NaN for missing; strings in it are a clear error."""
    try:
        values: np.ndarray = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"column {echo(name)} is numeric in the reference but not in this table") from exc
    return values


def category_values(frame: pd.DataFrame, name: str) -> list[str | None]:
    """A categorical column's labels (``3``, ``3.0`` and ``"3"`` are one category), None for missing."""
    return labels_of(frame[name].tolist())


def build_profile(
    frame: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    outputs: pd.DataFrame | None = None,
    n_bins: int = 10,
    max_points: int = 100_000,
    expected_outlier_rate: float = 0.01,
    n_boot: int = 200,
    seed: int = 0,
    joint: bool = True,
    detectors: bool = True,
) -> ReferenceProfile:
    """Profile ``frame``'s ``numeric`` and ``categorical`` columns.

    ``outputs`` holds the model's predictions (and probabilities) on held-out
    reference rows, one column each, for prediction drift. ``joint=False``
    skips what only the multivariate tests and detectors need;
    ``detectors=False`` skips fitting the outlier and novelty detectors.
    """
    if len(frame) < MIN_REFERENCE_ROWS:
        raise InvalidInput(f"a reference needs at least {MIN_REFERENCE_ROWS} rows, got {len(frame)}")
    if not numeric and not categorical:
        raise InvalidInput("the reference has no feature columns")
    rng = np.random.default_rng(seed)
    univariate = UnivariateProfile.build(
        frame, numeric=numeric, categorical=categorical, n_bins=n_bins, max_points=max_points,
        n_boot=n_boot, rng=rng,
    )
    joint_profile = (
        build_joint(frame, numeric=numeric, categorical=categorical, expected_outlier_rate=expected_outlier_rate,
                    rng=rng, seed=seed, detectors=detectors)
        if joint
        else None
    )
    output_profile = None
    if outputs is not None and len(outputs.columns):
        out_numeric = [str(c) for c in outputs.columns if pd.api.types.is_float_dtype(outputs[c])]
        out_categorical = [str(c) for c in outputs.columns if str(c) not in out_numeric]
        output_profile = UnivariateProfile.build(
            outputs, numeric=out_numeric, categorical=out_categorical, n_bins=n_bins,
            max_points=max_points, n_boot=n_boot, rng=rng,
        )
    return ReferenceProfile(
        univariate=univariate,
        joint=joint_profile,
        outputs=output_profile,
        config={
            "n_bins": n_bins,
            "max_points": max_points,
            "expected_outlier_rate": expected_outlier_rate,
            "n_boot": n_boot,
            "seed": seed,
        },
    )


def profile_size(profile: ReferenceProfile) -> int:
    """Bytes of the stored profile (for docs and benchmarks)."""
    return len(profile.to_bytes())




def build_joint(
    frame: pd.DataFrame,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    expected_outlier_rate: float,
    rng: np.random.Generator,
    seed: int,
    detectors: bool = True,
) -> JointProfile:
    """Fit the encoder, the PCA basis and (``detectors``) the detectors on part of the
    reference; calibrate on the held-out rest (the detectors on at most
    ``MAX_CALIBRATION_ROWS`` of it)."""
    encoder = FeatureEncoder.fit(frame, numeric=numeric, categorical=categorical)
    order = rng.permutation(len(frame))
    n_holdout = max(10, int(len(frame) * HOLDOUT_SHARE))
    hold_index, fit_index = order[:n_holdout], order[n_holdout:][:MAX_FIT_ROWS]
    x_fit = encoder.transform(frame.iloc[fit_index])
    x_hold = encoder.transform(frame.iloc[hold_index])
    pca = PcaBasis.fit(x_fit)
    reduced_fit, reduced_hold = pca.transform(x_fit), pca.transform(x_hold)
    fitted: dict[str, OutlierDetector] = {}
    # with a handful of rows there is no telling outliers from the rest; the holdout is in
    # random order, so its first rows are a random sample of it
    for name, make in DETECTORS.items() if detectors and len(fit_index) >= MIN_DETECTOR_ROWS else ():
        detector = make(expected_rate=expected_outlier_rate, random_state=seed)
        fitted[name] = detector.fit(reduced_fit, reduced_hold[:MAX_CALIBRATION_ROWS])
    return JointProfile(
        encoder=encoder,
        pca=pca,
        holdout_errors=pca.reconstruction_error(x_hold),
        holdout_projections=np.sort(reduced_hold, axis=0),
        sample=x_hold[:MAX_FIT_ROWS],
        detectors=fitted,
    )
