"""Evasion attacks from IBM's Adversarial Robustness Toolbox (ART) on loopwatch's pipelines.

ART attacks a model in its own feature space, so the attacks run in the
pipeline's encoded space (imputed and standardised numeric features, then the
one-hot categoricals) against the pipeline's final estimator, and what they
produce is decoded back into rows a client could send:

* only the numeric features move: the one-hot columns are frozen by ART's
  ``mask``, so every category stays the valid category the row had;
* each numeric feature stays within its training range (ART's ``clip_values``,
  then an exact clip after decoding; or a range widened by ``beyond_sd`` training
  standard deviations, for attacks on the clipping defence) and is rounded where
  the feature is integer;
* a numeric feature the attack left alone keeps its value, a missing one included.

Success is judged on the decoded rows through the whole pipeline, so a
perturbation undone by rounding counts as a failure. Needs the ``adversarial``
extra (``pip install 'loopwatch[adversarial]'``); ART warns at import when
PyTorch is absent, and :func:`import_art` silences exactly that warning.
HopSkipJump draws from NumPy's global random state (ART has no seed
argument): :func:`art_attack` seeds it for the call and restores it after.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopwatch.models.attacks import AttackResult, valid_numeric
from loopwatch.errors import InvalidInput, require, echo
from loopwatch.features.schema import FeatureSchema

#: The ART attacks the harness runs: gradient attacks need a logistic regression.
ATTACKS = ("fgsm", "pgd", "hopskipjump")
GRADIENT_ATTACKS = ("fgsm", "pgd")


def import_art() -> Any:
    """The ``art`` package with the evasion attacks and scikit-learn estimators imported."""
    with warnings.catch_warnings():
        # ART's certification module warns on every import when PyTorch is absent; loopwatch
        # uses none of it, and pytest turns warnings into errors
        warnings.filterwarnings("ignore", message="PyTorch not found", category=UserWarning)
        art = require("art", "adversarial")
        require("art.attacks.evasion", "adversarial")
        require("art.estimators.classification", "adversarial")
    return art


@dataclass(frozen=True)
class EncodedSpace:
    """The encoded feature space of a loopwatch pipeline, and the way back to rows."""

    schema: FeatureSchema
    #: Imputed value, mean and standard deviation of each numeric feature, as the pipeline saw them.
    medians: np.ndarray
    means: np.ndarray
    scales: np.ndarray
    #: Width of the encoded rows (numeric columns first).
    width: int
    #: How far past its training range (in training sd) a numeric feature may be moved.
    beyond_sd: float = 0.0

    @classmethod
    def of(cls, pipeline: Any, schema: FeatureSchema, *, beyond_sd: float = 0.0) -> EncodedSpace:
        try:
            numeric = pipeline.named_steps["features"].named_transformers_["numeric"]
            imputer, scaler = numeric.named_steps["impute"], numeric.named_steps["scale"]
            width = int(pipeline.named_steps["model"].n_features_in_)
        except (AttributeError, KeyError) as exc:
            raise InvalidInput("ART attacks need a pipeline built by loopwatch's training with numeric features") from exc
        return cls(schema=schema, medians=np.asarray(imputer.statistics_, dtype=np.float64),
                   means=np.asarray(scaler.mean_, dtype=np.float64),
                   scales=np.asarray(scaler.scale_, dtype=np.float64), width=width, beyond_sd=beyond_sd)

    @property
    def n_numeric(self) -> int:
        return len(self.schema.numeric)

    def mask(self) -> np.ndarray:
        """1 where an attack may move the encoded row (the numeric columns), 0 elsewhere."""
        out = np.zeros(self.width, dtype=np.float32)
        out[: self.n_numeric] = 1.0
        return out

    def clip_values(self) -> tuple[np.ndarray, np.ndarray]:
        """Per encoded column, the least and largest value a client's row can give."""
        low, high = np.zeros(self.width, dtype=np.float32), np.ones(self.width, dtype=np.float32)
        for j, name in enumerate(self.schema.numeric):
            feature = self.schema.feature(name)
            # a feature never seen with a value has no range: ten standard deviations either way
            margin = self.beyond_sd * (feature.std or 0.0)
            low[j] = -10.0 if feature.minimum is None else (feature.minimum - margin - self.means[j]) / self.scales[j]
            high[j] = 10.0 if feature.maximum is None else (feature.maximum + margin - self.means[j]) / self.scales[j]
        return low, high

    def decode(self, encoded: np.ndarray, rows: pd.DataFrame) -> pd.DataFrame:
        """``rows`` with the numeric features the attack moved set from ``encoded``."""
        numeric = self.schema.numeric
        original = rows[numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        moved = valid_numeric(encoded[:, : self.n_numeric].astype(np.float64) * self.scales + self.means, self.schema,
                              beyond_sd=self.beyond_sd)
        filled = np.where(np.isnan(original), self.medians, original)
        changed = ~np.isclose(moved, filled, rtol=0.0, atol=1e-6 * self.scales)
        out = rows.copy()
        out[numeric] = np.where(changed, moved, original)
        return out


def art_attack(
    attack: str,
    rows: pd.DataFrame,
    pipeline: Any,
    schema: FeatureSchema,
    *,
    eps: float = 0.3,
    seed: int = 0,
    max_iter: int = 20,
    max_eval: int = 1000,
    beyond_sd: float = 0.0,
) -> AttackResult:
    """Run one ART attack on ``rows`` (untargeted: away from the pipeline's answers).

    ``eps`` is the L-infinity budget of FGSM and PGD, in training standard
    deviations per numeric feature; ``max_iter`` bounds PGD's and HopSkipJump's
    iterations and ``max_eval`` HopSkipJump's model calls per gradient estimate.
    ``beyond_sd`` lets the attack take numeric features that many training standard
    deviations past their training range (the API accepts any finite number).
    """
    if attack not in ATTACKS:
        raise InvalidInput(f"unknown attack {echo(attack)}; choose from {', '.join(ATTACKS)}")
    import_art()
    from art.attacks.evasion import FastGradientMethod, HopSkipJump, ProjectedGradientDescent
    from art.estimators.classification import SklearnClassifier
    from art.estimators.classification.scikitlearn import ScikitlearnLogisticRegression
    from sklearn.linear_model import LogisticRegression

    space = EncodedSpace.of(pipeline, schema, beyond_sd=beyond_sd)
    features = rows.reset_index(drop=True)
    encoded = np.asarray(pipeline.named_steps["features"].transform(features), dtype=np.float32)
    estimator = pipeline.named_steps["model"]
    clip = space.clip_values()
    if attack in GRADIENT_ATTACKS:
        if not isinstance(estimator, LogisticRegression):
            raise InvalidInput(f"{attack} needs gradients: use it on a logistic regression")
        classifier = ScikitlearnLogisticRegression(estimator, clip_values=clip)
        if attack == "fgsm":
            method: Any = FastGradientMethod(classifier, norm=np.inf, eps=eps, batch_size=256)
        else:
            method = ProjectedGradientDescent(classifier, norm=np.inf, eps=eps, eps_step=eps / 4,
                                              max_iter=max_iter, batch_size=256, verbose=False)
        adversarial = method.generate(encoded, mask=space.mask())
    else:
        classifier = SklearnClassifier(estimator, clip_values=clip)
        method = HopSkipJump(classifier, norm=2, max_iter=max_iter, max_eval=max_eval,
                             init_eval=max(10, max_eval // 10), init_size=100, verbose=False)
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            adversarial = method.generate(encoded, mask=space.mask())
        finally:
            np.random.set_state(state)
    decoded = space.decode(np.asarray(adversarial), features)
    decoded.index = rows.index
    before = np.asarray(pipeline.predict(features))
    after = np.asarray(pipeline.predict(decoded.reset_index(drop=True)))
    moved = (decoded[schema.numeric].to_numpy(dtype=np.float64, na_value=np.nan)
             - features[schema.numeric].to_numpy(dtype=np.float64, na_value=np.nan)) / space.scales
    return AttackResult(adversarial=decoded, success=after != before,
                        distance=np.linalg.norm(np.nan_to_num(moved), axis=1))
