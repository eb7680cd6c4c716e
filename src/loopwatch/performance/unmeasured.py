"""Why a metric has no value.

A realized metric needs enough labels, and labels that make it defined (an AUC needs
both classes); an estimate needs enough rows and the model's probabilities. A metric
left null says which of these it lacked, with the sizes that decided it, so a quiet
window is never mistaken for a healthy one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from loopwatch.errors import InvalidInput, echo

#: ``too_few_labels`` / ``too_few_rows``: fewer than the minimum; ``single_class``: every label
#: is one class (a ranking metric is undefined); ``no_estimator``: the version kept no holdout
#: to fit one; ``no_probabilities``: the window's predictions carry none; ``undefined``: the
#: metric came out missing or infinite (labels of another kind than the model's, for one).
REASONS = ("too_few_labels", "too_few_rows", "single_class", "no_estimator", "no_probabilities", "undefined")


@dataclass(frozen=True, kw_only=True)
class Unmeasured:
    """A metric without a value: which, why, what the window had and what it needed."""

    metric: str
    reason: str
    #: What is counted: the labelled predictions (realized) or the predictions (estimated).
    counted: Literal["labels", "rows"]
    n: int
    minimum: int | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise InvalidInput(f"unknown reason {echo(self.reason)} for a metric without a value")

    def to_dict(self) -> dict[str, Any]:
        return {"value": None, "metric": self.metric, "reason": self.reason,
                f"n_{self.counted}": self.n, f"min_{self.counted}": self.minimum}


def unrealized(*, metric: str, labels: Any, min_labels: int, classification: bool) -> Unmeasured:
    """Why the realized ``metric`` of predictions with these ``labels`` has no value."""
    n = len(labels)
    if n < min_labels:
        reason = "too_few_labels"
    elif classification and len({repr(v) for v in labels}) < 2:
        reason = "single_class"
    else:
        reason = "undefined"
    return Unmeasured(metric=metric, reason=reason, counted="labels", n=n, minimum=min_labels)
