"""A model's monitoring configuration: thresholds, budgets and the business-value matrix.

Each model has one, versioned in the store: every change is a new version, so
an incident can always be read against the configuration that raised it. The
defaults are what a model gets before anyone configures it.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Mapping, get_args, get_origin, get_type_hints

from loopwatch.errors import InvalidInput, echo, listed

CONCEPT_METHODS = ("adwin", "hddm_a", "hddm_w", "page_hinkley", "kswin")


@dataclass(frozen=True, kw_only=True)
class MonitoringConfig:
    """What a model's monitoring checks, and when it calls something an incident.

    >>> MonitoringConfig.from_dict({"latency_budget_ms": 50}).latency_budget_ms
    50.0
    """

    #: Length of a monitoring window (``1h``, ``1d``, ``7d``).
    window: str = "1d"
    #: Seconds between scheduled evaluations by ``loopwatch serve`` and ``loopwatch watch``.
    schedule_seconds: float = 3600.0
    #: Per-window false-alarm rate of the input-drift decision.
    drift_alpha: float = 0.002
    #: Runtime percentile held to the latency budget, and the budget in milliseconds per
    #: request (``None``: no latency check).
    latency_percentile: float = 95.0
    latency_budget_ms: float | None = None
    #: Or a budget relative to the model's own baseline: this multiple of the median of the
    #: runtime percentile over the first ``latency_baseline_windows`` windows evaluated.
    latency_budget_ratio: float | None = None
    latency_baseline_windows: int = 7
    #: The categorical feature whose mix is watched for sampling and selection-bias changes
    #: (``None``: the first categorical feature of the schema).
    segment_feature: str | None = None
    #: Performance metric the loops reason with (``None``: accuracy for classifiers, MAE for regressors).
    metric: str | None = None
    #: A drop of realized (or estimated) performance below the holdout's by more than this
    #: (absolute) counts as a performance drift, when the holdout also lies outside the interval.
    performance_tolerance: float = 0.03
    #: The river detector run over the loss stream in label-arrival order.
    concept_detector: str = "adwin"
    #: Least labels before realized metrics or the concept-drift stream are trusted.
    min_labels: int = 200
    #: Labelled share of predictions below which more labels are asked for.
    min_label_coverage: float = 0.05
    #: Predictions a team can label per day, and the share of them drawn at random.
    labelling_budget: int = 100
    labelling_random_share: float = 0.2
    #: Business value of (true class -> predicted class) for classifiers.
    value_matrix: dict[str, dict[str, float]] | None = None
    #: Cost of over- and under-prediction per unit for regressors.
    cost_function: dict[str, Any] | None = None
    #: The business metric the model is meant to move, and the lags (in windows) to look at.
    business_metric: str | None = None
    business_max_lag: int = 7
    #: Where alerts go, and how long the same alert stays quiet after it was sent.
    webhooks: list[str] = field(default_factory=list)
    alert_cooldown_seconds: float = 3600.0
    #: Extraction defences of the predict response: probabilities rounded to this many
    #: decimals (``None``: full precision), or left out. Logged events keep the full values.
    probability_decimals: int | None = None
    withhold_probabilities: bool = False
    #: Evasion defences applied to every row before the model sees it (``clip``: to the
    #: training range, ``squeeze``: rounded to a grid); logged rows stay as sent.
    defences: list[str] = field(default_factory=list)
    #: False-positive rate on clean rows at which a row's adversarial score is flagged.
    adversarial_fpr: float = 0.01
    #: Level of the per-window test that names a client whose inputs are flagged too often
    #: (Bonferroni over the window's clients): the share of ordinary windows with a false
    #: ``adversarial_evasion`` stays below it.
    evasion_alpha: float = 0.001
    #: Practical thresholds set outright, by statistic (``{"js_distance": 0.1}``); every other
    #: statistic's is max(floor, the reference's band at min(n, practical_band_rows) rows):
    #: a window alarms only when a difference is significant and at least this large.
    practical_thresholds: dict[str, float] = field(default_factory=dict)
    #: N0: window rows beyond which the reference band stops narrowing.
    practical_band_rows: int = 1000

    def __post_init__(self) -> None:
        _positive("schedule_seconds", self.schedule_seconds)
        _positive("alert_cooldown_seconds", self.alert_cooldown_seconds, allow_zero=True)
        if not 0 < self.drift_alpha < 0.5:
            raise InvalidInput("drift_alpha must lie in (0, 0.5)")
        if not 50 <= self.latency_percentile < 100:
            raise InvalidInput("latency_percentile must lie in [50, 100)")
        if self.latency_budget_ms is not None:
            _positive("latency_budget_ms", self.latency_budget_ms)
        if self.latency_budget_ratio is not None and not 1 < self.latency_budget_ratio <= 1000:
            raise InvalidInput("latency_budget_ratio must lie in (1, 1000]")
        if not 1 <= self.latency_baseline_windows <= 1000:
            raise InvalidInput("latency_baseline_windows must lie in [1, 1000]")
        if not 0 <= self.performance_tolerance < 1:
            raise InvalidInput("performance_tolerance must lie in [0, 1)")
        if self.concept_detector not in CONCEPT_METHODS:
            raise InvalidInput(f"concept_detector must be one of {', '.join(CONCEPT_METHODS)}")
        if self.min_labels < 10:
            raise InvalidInput("min_labels must be at least 10")
        if not 0 <= self.min_label_coverage <= 1:
            raise InvalidInput("min_label_coverage must lie in [0, 1]")
        if self.labelling_budget < 0:
            raise InvalidInput("labelling_budget must be >= 0")
        if not 0 <= self.labelling_random_share <= 1:
            raise InvalidInput("labelling_random_share must lie in [0, 1]")
        if not 0 <= self.business_max_lag <= 60:
            raise InvalidInput("business_max_lag must lie in [0, 60]")
        if self.probability_decimals is not None and not 0 <= self.probability_decimals <= 15:
            raise InvalidInput("probability_decimals must lie in [0, 15]")
        from loopwatch.models.defences import check_defences

        check_defences(self.defences)
        if not 0 < self.adversarial_fpr < 0.5:
            raise InvalidInput("adversarial_fpr must lie in (0, 0.5)")
        if not 0 < self.evasion_alpha < 0.5:
            raise InvalidInput("evasion_alpha must lie in (0, 0.5)")
        from loopwatch.stats.practical import check_band_rows, check_overrides

        object.__setattr__(self, "practical_thresholds", check_overrides(self.practical_thresholds))
        check_band_rows(self.practical_band_rows)
        for url in self.webhooks:
            if (not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2000
                    or "\x00" in url):
                raise InvalidInput("webhooks must be http(s) URLs")
        if self.value_matrix is not None:
            for truth, row in self.value_matrix.items():
                if not isinstance(row, Mapping):
                    raise InvalidInput(f"value_matrix[{echo(truth)}] must map predicted classes to values")
                for value in row.values():
                    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                        raise InvalidInput("value_matrix values must be finite numbers")
                    if isinstance(value, int) and not -(2**63) <= value < 2**63:
                        raise InvalidInput("value_matrix holds an integer beyond 64 bits")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MonitoringConfig:
        """Build from JSON, refusing unknown keys and values of the wrong type."""
        if not isinstance(data, Mapping):
            raise InvalidInput("a monitoring configuration is a JSON object")
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(data) - set(known))
        if unknown:
            raise InvalidInput(f"unknown monitoring settings: {listed(unknown)}")
        values: dict[str, Any] = {}
        for key, value in data.items():
            values[key] = _coerce(key, value)
        try:
            return cls(**values)
        except TypeError as exc:  # pragma: no cover - guarded by _coerce
            raise InvalidInput(str(exc)) from exc

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def merged(self, changes: Mapping[str, Any]) -> MonitoringConfig:
        """This configuration with some settings changed (the next version)."""
        return MonitoringConfig.from_dict({**self.to_dict(), **changes})


def _positive(name: str, value: float, *, allow_zero: bool = False) -> None:
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise InvalidInput(f"{name} must be a positive number")


#: Lists' longest lengths, what a wrong one is told, and whether its items are checked here
#: (a webhook that is not a URL is told so by the configuration's own check).
_LISTS = {"webhooks": (20, "webhooks must be a list of at most 20 URLs", False),
          "defences": (10, "defences must be a list of defence names", True)}


def _coerce(key: str, value: Any) -> Any:
    """``value`` as the type the field declares (its annotation decides, so a new field needs
    no rule here), or InvalidInput."""
    hint = _field_types()[key]
    if type(None) in get_args(hint):  # X | None
        if value is None:
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
    if hint is bool:
        if not isinstance(value, bool):
            raise InvalidInput(f"{key} must be true or false")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InvalidInput(f"{key} must be a finite number")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int) or not -(2**63) <= value < 2**63:
            raise InvalidInput(f"{key} must be an integer")
        return value
    if hint is str:
        if not isinstance(value, str) or not value or len(value) > 200 or "\x00" in value:
            raise InvalidInput(f"{key} must be a non-empty string without NUL")
        return value
    if get_origin(hint) is list:
        longest, message, items = _LISTS[key]
        if (not isinstance(value, list) or len(value) > longest
                or (items and not all(isinstance(v, str) for v in value))):
            raise InvalidInput(message)
        return list(value)
    if hint == dict[str, float]:  # practical thresholds by statistic
        from loopwatch.stats.practical import check_overrides

        return check_overrides(value)
    if get_origin(hint) is dict:  # nested JSON objects: the value matrix, the cost function
        if not isinstance(value, Mapping) or len(value) > 1000:
            raise InvalidInput(f"{key} must be a JSON object")
        return {_name(key, k): _plain(key, v, depth=1) for k, v in value.items()}
    raise InvalidInput(f"{key}: unsupported value")  # pragma: no cover - every annotation is handled above


@functools.cache
def _field_types() -> dict[str, Any]:
    return get_type_hints(MonitoringConfig)


def _plain(key: str, value: Any, *, depth: int) -> Any:
    """A nested setting as plain JSON that any encoder can write back: finite numbers, 64-bit
    integers, short strings, shallow objects."""
    if isinstance(value, Mapping):
        if depth > 2 or len(value) > 1000:
            raise InvalidInput(f"{key} nests too deep or too wide")
        return {_name(key, k): _plain(key, v, depth=depth + 1) for k, v in value.items()}
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if not -(2**63) <= value < 2**63:
            raise InvalidInput(f"{key} holds an integer beyond 64 bits")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{key} values must be finite numbers")
        return value
    if isinstance(value, str) and len(value) <= 200 and "\x00" not in value:
        return value
    raise InvalidInput(f"{key} holds a value that is not a number, a short string or an object")


def _name(key: str, name: Any) -> str:
    """A key of a nested setting: short text without NUL (PostgreSQL text cannot hold one)."""
    text = str(name)
    if len(text) > 200 or "\x00" in text:
        raise InvalidInput(f"{key} has a key that is longer than 200 characters or holds NUL")
    return text
