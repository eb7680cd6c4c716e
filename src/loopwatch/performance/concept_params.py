"""The typed parameters of the concept-drift detectors: one frozen, keyword-only dataclass
per river detector, with loopwatch's defaults (see :mod:`loopwatch.performance.concept`
for why they differ from river's where they do).

The monitoring configuration stores a detector by its name (``concept_detector``);
:func:`concept_params` turns that name, and any overrides, into the typed parameters.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, Mapping

from loopwatch.errors import InvalidInput, echo, require

DETECTORS = ("adwin", "hddm_a", "hddm_w", "page_hinkley", "kswin")


@dataclass(frozen=True, kw_only=True)
class Adwin:
    """river's ``drift.ADWIN``, at river's defaults: any loss (0/1 or real)."""

    name: ClassVar[str] = "adwin"
    river_class: ClassVar[tuple[str, str]] = ("river.drift", "ADWIN")
    binary_only: ClassVar[bool] = False
    changed: ClassVar[tuple[str, ...]] = ()

    delta: float = 0.002
    clock: int = 32
    max_buckets: int = 5
    min_window_length: int = 5
    grace_period: int = 10


@dataclass(frozen=True, kw_only=True)
class HddmA:
    """river's ``drift.binary.HDDMA``, at river's defaults (one-sided): 0/1 errors only."""

    name: ClassVar[str] = "hddm_a"
    river_class: ClassVar[tuple[str, str]] = ("river.drift.binary", "HDDMA")
    binary_only: ClassVar[bool] = True
    changed: ClassVar[tuple[str, ...]] = ()

    drift_confidence: float = 0.001
    warning_confidence: float = 0.005
    two_sided_test: bool = False


@dataclass(frozen=True, kw_only=True)
class HddmW:
    """river's ``drift.binary.HDDMW`` with a longer memory (``lambda_val=0.01``): 0/1 errors only."""

    name: ClassVar[str] = "hddm_w"
    river_class: ClassVar[tuple[str, str]] = ("river.drift.binary", "HDDMW")
    binary_only: ClassVar[bool] = True
    changed: ClassVar[tuple[str, ...]] = ("lambda_val",)

    drift_confidence: float = 0.001
    warning_confidence: float = 0.005
    lambda_val: float = 0.01
    two_sided_test: bool = False


@dataclass(frozen=True, kw_only=True)
class PageHinkley:
    """river's ``drift.PageHinkley`` watching for a rise (``mode="up"``); threshold and delta
    are in loss units."""

    name: ClassVar[str] = "page_hinkley"
    river_class: ClassVar[tuple[str, str]] = ("river.drift", "PageHinkley")
    binary_only: ClassVar[bool] = False
    changed: ClassVar[tuple[str, ...]] = ("mode",)

    min_instances: int = 30
    delta: float = 0.005
    threshold: float = 50.0
    alpha: float = 0.9999
    mode: str = "up"


@dataclass(frozen=True, kw_only=True)
class Kswin:
    """river's ``drift.KSWIN`` with 300 against 300 values at ``alpha=1e-4``; any loss.
    Its draws come from the detector's ``seed``."""

    name: ClassVar[str] = "kswin"
    river_class: ClassVar[tuple[str, str]] = ("river.drift", "KSWIN")
    binary_only: ClassVar[bool] = False
    changed: ClassVar[tuple[str, ...]] = ("alpha", "window_size", "stat_size")

    alpha: float = 1e-4
    window_size: int = 1000
    stat_size: int = 300


#: The typed parameters of a concept-drift detector: one frozen dataclass per river detector.
ConceptDetectorParams = Adwin | HddmA | HddmW | PageHinkley | Kswin

#: Each detector's parameter class, by the name the monitoring configuration stores.
PARAMS_BY_NAME: dict[str, type[ConceptDetectorParams]] = {
    cls.name: cls for cls in (Adwin, HddmA, HddmW, PageHinkley, Kswin)
}

#: river's class of each detector, as (module, name).
RIVER_CLASSES = {name: cls.river_class for name, cls in PARAMS_BY_NAME.items()}

#: Parameters that differ from river's defaults (see the module docstring for why).
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    name: {k: getattr(cls(), k) for k in cls.changed} for name, cls in PARAMS_BY_NAME.items()
}

#: Detectors that only take 0/1 errors.
BINARY_ONLY = frozenset(name for name, cls in PARAMS_BY_NAME.items() if cls.binary_only)

def concept_params(method: str, params: Mapping[str, Any] | None = None) -> ConceptDetectorParams:
    """The typed parameters of the detector named ``method`` (the monitoring configuration's
    ``concept_detector``), loopwatch's defaults overridden by ``params``.

    >>> concept_params("kswin", {"alpha": 1e-3})
    Kswin(alpha=0.001, window_size=1000, stat_size=300)
    """
    cls = PARAMS_BY_NAME.get(method) if isinstance(method, str) else None
    if cls is None:
        raise InvalidInput(f"unknown concept drift detector {echo(method)}; choose one of: {', '.join(DETECTORS)}")
    if params is None:
        return cls()
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise InvalidInput("params must be a mapping of parameter names to values")
    try:
        return cls(**params)
    except TypeError as exc:
        raise InvalidInput(f"invalid parameters for {method}: {exc}") from exc


def river_params(params: ConceptDetectorParams) -> dict[str, Any]:
    """What a result reports of the parameters: loopwatch's changes of river's defaults, and
    every other parameter set away from river's default."""
    import inspect

    module_name, class_name = params.river_class
    signature = inspect.signature(getattr(require(module_name, "streaming"), class_name))
    river_defaults = {k: p.default for k, p in signature.parameters.items()}
    return {
        f.name: getattr(params, f.name) for f in fields(params)
        if f.name in params.changed or river_defaults.get(f.name, inspect.Parameter.empty) != getattr(params, f.name)
    }
