"""The feature schema of a model version, as a record: names, kinds, categories and ranges.

It is inferred from the training table (:func:`loopwatch.features.schema.infer_schema`), stored
with the version, and every predict request is validated against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Kind = Literal["numeric", "categorical"]
Task = Literal["classification", "regression"]
#: The type of a categorical feature's values as the training table held them. A category is
#: known everywhere inside loopwatch by its label (:func:`category_label`: ``3`` and ``"3"``
#: are one category); the type says how to give values back (exports) and what a client may
#: send (a number for integer codes, a boolean for flags, and always the label as a string).
CategoryType = Literal["string", "integer", "boolean"]


@dataclass(frozen=True, kw_only=True)
class Feature:
    name: str
    kind: Kind
    nullable: bool = False
    #: Integer-valued in training (counts, say); still sent as JSON numbers.
    integer: bool = False
    #: Categories seen in training (categorical features only), as labels.
    categories: tuple[str, ...] = ()
    #: How the training table held the categories (categorical features only; ``None`` for
    #: numeric features and for schemas stored before the type was recorded: strings).
    category_type: CategoryType | None = None
    #: Training range and moments (numeric features only).
    minimum: float | None = None
    maximum: float | None = None
    mean: float | None = None
    std: float | None = None
    #: Share of training rows where the feature was missing.
    missing_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["categories"] = list(self.categories)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Feature:
        data = dict(data)
        data["categories"] = tuple(data.get("categories") or ())
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class FeatureSchema:
    features: tuple[Feature, ...]
    target: str
    task: Task
    #: Class labels in the order of the model's probability columns (classification).
    classes: tuple[Any, ...] = field(default=())

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def numeric(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "numeric"]

    @property
    def categorical(self) -> list[str]:
        return [f.name for f in self.features if f.kind == "categorical"]

    def feature(self, name: str) -> Feature:
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": [f.to_dict() for f in self.features],
            "target": self.target,
            "task": self.task,
            "classes": list(self.classes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FeatureSchema:
        return cls(
            features=tuple(Feature.from_dict(f) for f in data["features"]),
            target=data["target"],
            task=data["task"],
            classes=tuple(data.get("classes") or ()),
        )
