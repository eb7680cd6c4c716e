"""A model's input rows as the matrix the loss models of direct loss estimation read.

Numeric columns stay numbers, missing values NaN (gradient-boosted trees
route NaN on their own). Categorical columns (any column that is not numeric
in the reference) become the index of their category among the reference's
categories, sorted; a missing value, or a category the reference never saw,
is NaN. The trees treat these columns as categorical, so the order of the
codes means nothing. Fitted once on the holdout and small enough to store as
JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, echo
from loopwatch.performance.labels import label_text

#: Most categories of one column that get a code of their own (the trees take at most 255 bins);
#: the rarest beyond that count as unseen.
MAX_CATEGORIES = 250


def _texts(column: pd.Series) -> list[str | None]:
    return [None if v is None or (isinstance(v, float) and v != v) else label_text(v) for v in column.tolist()]


@dataclass(frozen=True)
class InputEncoder:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + self.categorical

    @property
    def categorical_mask(self) -> np.ndarray:
        mask: np.ndarray = np.r_[np.zeros(len(self.numeric), bool), np.ones(len(self.categorical), bool)]
        return mask

    @classmethod
    def fit(cls, frame: pd.DataFrame) -> InputEncoder:
        numeric, categorical, categories = [], [], []
        for name in frame.columns:
            column = frame[name]
            if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
                numeric.append(str(name))
                continue
            counts = pd.Series([t for t in _texts(column) if t is not None], dtype=object).value_counts()
            categorical.append(str(name))
            categories.append(tuple(sorted(str(c) for c in counts.index[:MAX_CATEGORIES])))
        return cls(tuple(numeric), tuple(categorical), tuple(categories))

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        missing = [c for c in self.columns if c not in frame.columns]
        if missing:
            raise InvalidInput(f"the inputs lack the columns {echo(missing)}")
        out = np.full((len(frame), len(self.columns)), np.nan)
        for j, name in enumerate(self.numeric):
            try:
                out[:, j] = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise InvalidInput(f"column {echo(name)} is numeric in the reference but not here") from exc
        for j, (name, cats) in enumerate(zip(self.categorical, self.categories), start=len(self.numeric)):
            lookup = {c: float(i) for i, c in enumerate(cats)}
            out[:, j] = [lookup.get(t, np.nan) if t is not None else np.nan for t in _texts(frame[name])]
        if np.isinf(out).any():
            raise InvalidInput("the inputs hold infinite values")
        return out

    def inverse(self, matrix: np.ndarray) -> pd.DataFrame:
        """The frame a matrix of this encoder encodes (categories as strings, missing as None)."""
        data: dict[str, Any] = {name: matrix[:, j] for j, name in enumerate(self.numeric)}
        for j, (name, cats) in enumerate(zip(self.categorical, self.categories), start=len(self.numeric)):
            labels = np.asarray(list(cats) + [None], dtype=object)
            codes = np.where(np.isnan(matrix[:, j]), len(cats), matrix[:, j]).astype(np.int64)
            data[name] = labels[codes]
        return pd.DataFrame(data, columns=list(self.columns))

    def to_dict(self) -> dict[str, Any]:
        return {"numeric": list(self.numeric), "categorical": list(self.categorical),
                "categories": [list(c) for c in self.categories]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputEncoder:
        return cls(tuple(data["numeric"]), tuple(data["categorical"]), tuple(tuple(c) for c in data["categories"]))
