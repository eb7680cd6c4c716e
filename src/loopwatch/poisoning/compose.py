"""Run the poisoning screens on one training table: what each needs, and when it can run.

:func:`run_screens` encodes the features once (an encoder fitted on the
trusted reference when there is one), fits the out-of-fold model once, and
hands each screen what it reads. A screen that cannot run on the table (too
few rows, one class, no reference, one source) is skipped and says why.
The screens (scipy, scikit-learn) are imported when they first run, so that
importing the screening hook stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput
from loopwatch.poisoning.base import ScreenResult

#: The poisoning screens, in the order they run (each module's ``NAME``).
POISONING_SCREENS = ("label_flips", "reference_distance", "source_skew", "backdoor")


@dataclass(frozen=True, kw_only=True)
class ScreenSettings:
    """The knobs of the screens; the defaults are the ones retraining uses."""

    #: False-positive rate on clean data of the score screens (flips, distance).
    fpr: float = 0.01
    #: Family-wise error rate of the test screens (sources, backdoor).
    alpha: float = 0.01
    #: Neighbours of the flip screen.
    k: int = 20
    #: Fewest labels of a source (and of the others together) to test it.
    min_source_labels: int = 30
    #: Fewest rows of a backdoor pattern, and the largest share of rows it may hold.
    min_pattern_rows: int = 8
    max_pattern_share: float = 0.05
    #: The screens to run (``None``: all of :data:`POISONING_SCREENS`).
    screens: tuple[str, ...] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        unknown = set(self.screens or ()) - set(POISONING_SCREENS)
        if unknown:
            raise InvalidInput(f"unknown screens {sorted(unknown)}; the screens are {list(POISONING_SCREENS)}")

    def wants(self, name: str) -> bool:
        return self.screens is None or name in self.screens


@dataclass(frozen=True)
class ScreensRun:
    results: list[ScreenResult] = field(default_factory=list)
    #: Screens that did not run, with the reason.
    skipped: dict[str, str] = field(default_factory=dict)


def run_screens(
    features: pd.DataFrame,
    labels: Sequence[Any] | None,
    *,
    numeric: Sequence[str],
    categorical: Sequence[str],
    classification: bool,
    reference: pd.DataFrame | None = None,
    reference_labels: Sequence[Any] | None = None,
    sources_of_rows: Sequence[Any] | None = None,
    predictions: Sequence[Any] | None = None,
    settings: ScreenSettings | None = None,
) -> ScreensRun:
    """Every poisoning screen that can run on ``features`` (rows that passed the certain checks).

    ``labels`` are the rows' class values (classification) or targets;
    ``reference`` the trusted sample (its feature columns are read) and
    ``reference_labels`` its labels; ``sources_of_rows`` who supplied each
    label; ``predictions`` the model's predicted class of each row (else the
    out-of-fold model's). The backdoor screen's expected labels come from a
    model of the reference when there is one (it cannot have learnt a trigger
    that only the table holds), else from the out-of-fold model.
    """
    from loopwatch.poisoning import backdoor, label_flips, reference_distance, sources
    from loopwatch.poisoning.flip_reference import reference_null
    from loopwatch.poisoning.base import (
        class_codes,
        encode_features,
        fitted_without,
        out_of_fold_probabilities,
        reference_probabilities,
        with_missing_flags,
    )

    chosen = settings or ScreenSettings()
    run = ScreensRun()
    n = len(features)
    names = [*numeric, *categorical]
    trusted = None
    if reference is not None and len(reference) >= reference_distance.MIN_REFERENCE_ROWS:
        trusted = reference.reindex(columns=names)
    x, encoder = encode_features(features[names], numeric=numeric, categorical=categorical, fit_on=trusted)
    # the table's own models see its nulls; the reference's (distance, expected labels) read x as encoded
    x_model = with_missing_flags(x, features, numeric)
    classes: list[str] = []
    proba = None
    if classification and labels is not None:
        codes, classes = class_codes(labels)
        if n >= label_flips.MIN_ROWS and len(classes) >= 2:
            proba = out_of_fold_probabilities(x_model, codes, len(classes), seed=chosen.seed)

    def skip(name: str, why: str) -> None:
        if chosen.wants(name):
            run.skipped[name] = why

    if not chosen.wants(label_flips.NAME):
        pass
    elif proba is None:
        skip(label_flips.NAME, _why_no_model(classification, n, classes))
    else:
        null = None
        if trusted is not None and reference_labels is not None and len(reference_labels) == len(trusted):
            # the reference encoded as the table's own models read it (its null flags in the table's columns)
            x_trusted = with_missing_flags(encoder.transform(trusted), trusted, numeric, like=features)
            shares = np.bincount(codes, minlength=len(classes)) / len(codes)
            null = reference_null(x_trusted, reference_labels, x_model, classes, shares, seed=chosen.seed)
        run.results.append(label_flips.label_flip_screen(
            x_model, list(labels or ()), fpr=chosen.fpr, k=chosen.k, seed=chosen.seed, probabilities=proba,
            alpha=chosen.alpha, reference=null))

    if not chosen.wants(reference_distance.NAME):
        pass
    elif trusted is None:
        skip(reference_distance.NAME, f"no reference of at least {reference_distance.MIN_REFERENCE_ROWS} rows")
    elif n == 0:
        skip(reference_distance.NAME, "no rows")
    else:
        run.results.append(reference_distance.reference_distance_screen(
            x, encoder.transform(trusted), fpr=chosen.fpr, seed=chosen.seed, alpha=chosen.alpha))

    if not chosen.wants(sources.NAME):
        pass
    elif not classification or labels is None:
        skip(sources.NAME, "regression targets: disagreement needs classes")
    elif sources_of_rows is None or len(set(map(str, sources_of_rows))) < 2:
        skip(sources.NAME, "fewer than two feedback sources")
    elif predictions is None and proba is None:
        skip(sources.NAME, "no predictions to compare the labels with")
    else:
        predicted = list(predictions) if predictions is not None else [classes[i] for i in proba.argmax(axis=1)]  # type: ignore[union-attr]  # proba is set when predictions is not (checked above)
        run.results.append(sources.source_skew_screen(
            list(labels), list(sources_of_rows), predicted, alpha=chosen.alpha,
            min_labels=chosen.min_source_labels))

    if not chosen.wants(backdoor.NAME):
        pass
    elif proba is None:
        skip(backdoor.NAME, _why_no_model(classification, n, classes))
    else:
        expected = proba
        if trusted is not None and reference_labels is not None and len(reference_labels) == len(trusted):
            from_reference = reference_probabilities(encoder.transform(trusted), reference_labels, x, classes)
            expected = proba if from_reference is None else from_reference
        def refit(rows: np.ndarray) -> np.ndarray:
            return fitted_without(x_model, codes, len(classes), rows)

        run.results.append(backdoor.backdoor_screen(
            features[names], list(labels or ()), expected, reference=trusted, refit=refit, alpha=chosen.alpha,
            min_count=chosen.min_pattern_rows, max_share=chosen.max_pattern_share))
    return run


def _why_no_model(classification: bool, n: int, classes: list[str]) -> str:
    from loopwatch.poisoning.label_flips import MIN_ROWS

    if not classification:
        return "regression targets: the screen needs classes"
    if n < MIN_ROWS:
        return f"fewer than {MIN_ROWS} rows"
    return "fewer than two classes"


def flagged_rows(run: ScreensRun, n_rows: int) -> tuple[np.ndarray, list[list[str]]]:
    """Which rows any screen flagged, and every reason of each row."""
    flagged = np.zeros(n_rows, dtype=bool)
    reasons: list[list[str]] = [[] for _ in range(n_rows)]
    for result in run.results:
        flagged |= result.flagged
        for i in np.flatnonzero(result.flagged):
            reasons[i].append(result.reasons[i] or result.name)
    return flagged, reasons
