"""Validation shared by the performance functions: labels to class indices, probability matrices.

Labels are turned into indices into ``classes`` once, at entry, so every metric
works on small integers. A label may come back from the prediction log as the
string a class is known by (``"1"`` for the class ``1``, ``"true"`` for
``True``), so each class answers to its value and to that string.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from loopwatch.errors import InvalidInput, echo


def label_text(value: Any) -> str:
    # the same spelling as loopwatch.features.schema.category_label, without importing pandas
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def check_classes(classes: Sequence[Any]) -> tuple[Any, ...]:
    out = tuple(c.item() if hasattr(c, "item") else c for c in classes)
    if len(out) < 2:
        raise InvalidInput(f"classification needs at least two classes, got {len(out)}")
    if len({label_text(c) for c in out}) != len(out):
        raise InvalidInput(f"classes must be distinct: {echo(list(out))}")
    return out


def positive_index(classes: tuple[Any, ...], positive: Any) -> int:
    """The index of the positive class: ``positive``, or by default the second class."""
    if positive is None:
        return 1
    return int(encode_labels([positive], classes, name="positive")[0])


def encode_labels(values: Any, classes: tuple[Any, ...], *, name: str) -> np.ndarray:
    """Each label as its index into ``classes``; a label that is no class is an error."""
    array = np.asarray(values, dtype=object) if not isinstance(values, np.ndarray) else values
    if array.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional, got shape {array.shape}")
    lookup: dict[Any, int] = {}
    for i, cls in enumerate(classes):
        lookup.setdefault(label_text(cls), i)
    for i, cls in enumerate(classes):
        lookup[cls] = i  # the value itself wins over another class's spelling
    try:
        uniques, inverse = np.unique(array, return_inverse=True)
    except TypeError:  # labels of mixed types do not sort: go label by label
        uniques = np.asarray(list(dict.fromkeys(array.tolist())), dtype=object)
        position = {v: i for i, v in enumerate(uniques.tolist())}
        inverse = np.fromiter((position[v] for v in array.tolist()), dtype=np.int64, count=len(array))
    codes = np.empty(len(uniques), dtype=np.int64)
    for j, value in enumerate(uniques.tolist()):
        code = lookup.get(value)
        if code is None:
            code = lookup.get(label_text(value))
        if code is None:
            raise InvalidInput(
                f"{name} holds {echo(value)}, which is not one of the classes {echo(list(classes))}"
            )
        codes[j] = code
    return codes[np.asarray(inverse, dtype=np.int64).reshape(-1)]


def check_proba(y_proba: Any, *, n: int, k: int, name: str = "y_proba") -> np.ndarray:
    """A float matrix of one row per label and one column per class, every value in [0, 1]."""
    try:
        proba = np.asarray(y_proba, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be numeric") from exc
    if proba.ndim != 2 or proba.shape != (n, k):
        raise InvalidInput(f"{name} must have shape ({n}, {k}): one column per class, got {proba.shape}")
    if not np.isfinite(proba).all() or proba.min(initial=0.0) < 0 or proba.max(initial=0.0) > 1:
        raise InvalidInput(f"{name} must hold probabilities: finite numbers in [0, 1]")
    return proba


def check_values(values: Any, *, name: str, n: int | None = None) -> np.ndarray:
    """A one-dimensional float array of finite numbers (of length ``n`` when given)."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name} must be numeric") from exc
    if array.ndim != 1:
        raise InvalidInput(f"{name} must be one-dimensional, got shape {array.shape}")
    if n is not None and len(array) != n:
        raise InvalidInput(f"{name} has {len(array)} values, expected {n}")
    if not np.isfinite(array).all():
        raise InvalidInput(f"{name} must hold finite numbers")
    return array


def check_confidence(confidence: float) -> float:
    if not isinstance(confidence, (int, float)) or not 0 < confidence < 1:
        raise InvalidInput(f"confidence must be between 0 and 1, got {echo(confidence)}")
    return float(confidence)


def check_count(value: Any, *, name: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise InvalidInput(f"{name} must be an integer >= {minimum}, got {echo(value)}")
    return int(value)
