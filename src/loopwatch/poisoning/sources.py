"""One feedback source whose labels skew: each source against all the others.

Labels arrive from several sources (the ``client_id`` that sent them: a CRM
export, a partner feed, an API key). A source that flips labels differs from
the others in two ways that need no ground truth:

- its labels disagree with the model's predictions more often (a one-sided
  two-proportion z-test of its disagreement rate against the pooled rate of
  every other source);
- its label distribution differs (a two-sided two-proportion z-test per class
  against the other sources; for more than two classes the smallest p-value
  times the number of classes).

A source is suspect when its disagreement p-value, times the number of
sources tested (Bonferroni), is at most ``alpha``: the chance that any honest
source is named on a clean period is then at most ``alpha`` when the sources
label alike. The label distribution is evidence shown beside it, not a
verdict of its own: with two sources its test is symmetric and would name
the honest one too, while "disagrees with the model more than the others do"
names only the one whose labels are worse. Comparing sources with each other,
not with the training data, keeps the test quiet through a concept drift,
which moves every honest source's disagreement together.

What it cannot tell apart: a source that selects on the outcome (a feed of
cancellations only) skews its label distribution and its disagreement as a
poisoner does. Its rows are quarantined with the evidence and can be
released. A source needs ``min_labels`` labels to be tested, and so do the
others together: a lone source has nothing to be compared with.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np
from scipy import stats

from loopwatch.errors import InvalidInput, echo
from loopwatch.features.schema import category_label
from loopwatch.poisoning.base import ScreenResult, check_rate

NAME = "source_skew"
#: The name of rows without a source, in reasons and evidence.
NO_SOURCE = "(no source)"


@dataclass(frozen=True, kw_only=True)
class SourceEvidence:
    """How one feedback source's labels compare with every other source's."""

    source: str
    n_labels: int
    n_others: int
    #: Share of its labels that differ from the model's prediction, and the others' share.
    disagreement: float | None
    disagreement_others: float | None
    #: One-sided p-value of "its disagreement is higher" (raw).
    disagreement_p: float
    #: Share of each class among its labels and among the others'.
    label_shares: dict[str, float] = field(default_factory=dict)
    label_shares_others: dict[str, float] = field(default_factory=dict)
    #: Two-sided p-value of "its label distribution differs" (raw; Bonferroni over classes).
    label_p: float = 1.0
    #: The disagreement p-value times the number of sources tested (capped at 1).
    adjusted_p: float = 1.0
    suspect: bool = False

    @property
    def reason(self) -> str:
        return f"source:{self.source}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "n_labels": self.n_labels, "n_others": self.n_others,
            "disagreement": self.disagreement, "disagreement_others": self.disagreement_others,
            "disagreement_p": self.disagreement_p, "label_shares": dict(self.label_shares),
            "label_shares_others": dict(self.label_shares_others), "label_p": self.label_p,
            "adjusted_p": self.adjusted_p, "suspect": self.suspect, "reason": self.reason,
        }


def two_proportion_z(k1: int, n1: int, k2: int, n2: int) -> float:
    """The pooled two-proportion z statistic of ``k1/n1`` against ``k2/n2`` (0 when undefined)."""
    if n1 == 0 or n2 == 0:
        return 0.0
    pooled = (k1 + k2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance <= 0.0:
        return 0.0
    return float((k1 / n1 - k2 / n2) / np.sqrt(variance))


def source_skew_test(
    labels: Sequence[Any],
    sources: Sequence[Any],
    predictions: Sequence[Any],
    *,
    alpha: float = 0.01,
    min_labels: int = 30,
) -> list[SourceEvidence]:
    """Test every source with at least ``min_labels`` labels against all the others.

    Labels and predictions are compared by their text (``1`` and ``"1"`` agree).
    ``predictions`` holds the model's predicted class per row (``None`` entries
    are left out of the disagreement test): the served prediction, or a
    cross-validated one. Returns the tested sources, most suspect first.

    >>> labels = [0] * 900 + [1] * 100 + [1] * 60 + [0] * 40
    >>> sources = ["crm"] * 1000 + ["partner"] * 100
    >>> found = source_skew_test(labels, sources, [0] * 1100)
    >>> [(e.source, e.suspect) for e in found]
    [('partner', True), ('crm', False)]
    """
    level = check_rate(alpha, "alpha")
    n = len(labels)
    if len(sources) != n or len(predictions) != n:
        raise InvalidInput("labels, sources and predictions must have one entry per row")
    if isinstance(min_labels, bool) or not isinstance(min_labels, int) or min_labels < 1:
        raise InvalidInput(f"min_labels must be a positive integer, got {echo(min_labels)}")
    label_text = np.array([category_label(v) for v in labels], dtype=object)
    source_text = np.array([NO_SOURCE if s is None else str(s) for s in sources], dtype=object)
    has_prediction = np.array([p is not None for p in predictions], dtype=bool)
    wrong = np.array([p is not None and category_label(p) != lab for p, lab in zip(predictions, label_text)],
                     dtype=bool)
    classes = sorted(set(label_text.tolist()))
    tested = [s for s in sorted(set(source_text.tolist()))
              if (source_text == s).sum() >= min_labels and (source_text != s).sum() >= min_labels]
    found = []
    for source in tested:
        mine = source_text == source
        found.append(_evidence(source, mine, label_text, classes, has_prediction, wrong))
    out = []
    for evidence in found:
        adjusted = min(1.0, evidence.disagreement_p * len(found))
        out.append(_replace(evidence, adjusted_p=adjusted, suspect=adjusted <= level))
    return sorted(out, key=lambda e: (e.adjusted_p, e.source))


def source_skew_screen(
    labels: Sequence[Any],
    sources: Sequence[Any],
    predictions: Sequence[Any],
    *,
    alpha: float = 0.01,
    min_labels: int = 30,
) -> ScreenResult:
    """Flag every row of a suspect source (reason ``source:<id>``); see :func:`source_skew_test`."""
    evidence = source_skew_test(labels, sources, predictions, alpha=alpha, min_labels=min_labels)
    suspects = {e.source for e in evidence if e.suspect}
    source_text = [NO_SOURCE if s is None else str(s) for s in sources]
    flagged = np.array([s in suspects for s in source_text], dtype=bool)
    by_source = {e.source: e.adjusted_p for e in evidence}
    scores = np.array([1.0 - by_source[s] if s in by_source else np.nan for s in source_text], dtype=np.float64)
    return ScreenResult(
        name=NAME,
        scores=scores,
        flagged=flagged,
        reasons=tuple(f"source:{s}" if f else None for s, f in zip(source_text, flagged)),
        fpr=float(alpha),
        details={"sources": [e.to_dict() for e in evidence]},
    )


def _evidence(
    source: str, mine: np.ndarray, labels: np.ndarray, classes: list[str], has_prediction: np.ndarray,
    wrong: np.ndarray,
) -> SourceEvidence:
    others = ~mine
    n_mine, n_others = int(mine.sum()), int(others.sum())
    with_p_mine, with_p_others = int((mine & has_prediction).sum()), int((others & has_prediction).sum())
    k_mine, k_others = int((mine & wrong).sum()), int((others & wrong).sum())
    if with_p_mine and with_p_others:
        z = two_proportion_z(k_mine, with_p_mine, k_others, with_p_others)
        disagreement_p = float(stats.norm.sf(z))
    else:
        disagreement_p = 1.0
    shares_mine = {c: float((labels[mine] == c).mean()) for c in classes}
    shares_others = {c: float((labels[others] == c).mean()) for c in classes}
    per_class = classes[:1] if len(classes) == 2 else classes  # two classes: one test says it all
    label_p = 1.0
    for c in per_class:
        z = two_proportion_z(int((labels[mine] == c).sum()), n_mine, int((labels[others] == c).sum()), n_others)
        label_p = min(label_p, float(2.0 * stats.norm.sf(abs(z))))
    label_p = min(1.0, label_p * len(per_class))
    return SourceEvidence(
        source=source, n_labels=n_mine, n_others=n_others,
        disagreement=k_mine / with_p_mine if with_p_mine else None,
        disagreement_others=k_others / with_p_others if with_p_others else None,
        disagreement_p=disagreement_p, label_shares=shares_mine, label_shares_others=shares_others,
        label_p=label_p,
    )


def _replace(evidence: SourceEvidence, **changes: Any) -> SourceEvidence:
    return replace(evidence, **changes)
