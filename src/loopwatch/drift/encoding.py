"""Turn a table into the float matrix the multivariate tests and detectors work on.

Numeric features: missing values take the reference median, then each is
standardised by the reference mean and standard deviation. Categorical
features: one-hot over the reference's most frequent categories; a category
the reference never saw is all zeros, so it shows as a change rather than an
error. Fitted once on the reference and stored with its profile.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.features.frames import labels_of

#: Most categories of one feature that get their own column.
MAX_CATEGORIES = 20


@dataclass(frozen=True)
class FeatureEncoder:
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    medians: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    categories: tuple[tuple[str, ...], ...]

    @classmethod
    def fit(
        cls, frame: pd.DataFrame, *, numeric: Sequence[str], categorical: Sequence[str]
    ) -> FeatureEncoder:
        medians, means, scales = [], [], []
        for name in numeric:
            values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            values = values[~np.isnan(values)]
            median = float(np.median(values)) if values.size else 0.0
            std = float(values.std()) if values.size else 0.0
            medians.append(median)
            means.append(float(values.mean()) if values.size else 0.0)
            scales.append(std if std > 0 else 1.0)
        categories = []
        for name in categorical:
            counts = pd.Series([v for v in labels_of(frame[name].tolist()) if v is not None], dtype=object).value_counts()
            categories.append(tuple(sorted(counts.index[:MAX_CATEGORIES].tolist())))
        return cls(
            numeric=tuple(numeric),
            categorical=tuple(categorical),
            medians=tuple(medians),
            means=tuple(means),
            scales=tuple(scales),
            categories=tuple(categories),
        )

    @property
    def n_columns(self) -> int:
        return len(self.numeric) + sum(len(c) for c in self.categories)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), self.n_columns), dtype=np.float64)
        for j, name in enumerate(self.numeric):
            values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
            values = np.where(np.isnan(values), self.medians[j], values)
            out[:, j] = (values - self.means[j]) / self.scales[j]
        col = len(self.numeric)
        for name, cats in zip(self.categorical, self.categories):
            labels = np.array([v or "" for v in labels_of(frame[name].tolist())], dtype=object)
            for category in cats:
                out[:, col] = labels == category
                col += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric": list(self.numeric),
            "categorical": list(self.categorical),
            "medians": list(self.medians),
            "means": list(self.means),
            "scales": list(self.scales),
            "categories": [list(c) for c in self.categories],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureEncoder:
        return cls(
            numeric=tuple(data["numeric"]),
            categorical=tuple(data["categorical"]),
            medians=tuple(data["medians"]),
            means=tuple(data["means"]),
            scales=tuple(data["scales"]),
            categories=tuple(tuple(c) for c in data["categories"]),
        )
