"""The versioned ground truth of injected incidents, and the demo's default one.

The timeline is the answer key that monitoring is graded against: each incident
says when it starts, how big it is (in a stated unit), what it touches (a
feature, a country, a client, a label source, a model version) and how late a
detection still counts. It is plain data so it can be written next to the demo's
results and read back with :meth:`Timeline.from_dict`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Final

TIMELINE_VERSION: Final = "1"
DEFAULT_START: Final = datetime(2026, 1, 5, tzinfo=UTC)
DEFAULT_DAYS: Final = 70

INCIDENT_KINDS: Final = (
    "covariate_shift",
    "selection_bias",
    "concept_drift",
    "software_change",
    "adversarial_probing",
    "label_poisoning",
    "latency_regression",
)

Scalar = str | int | float | bool | None


@dataclass(frozen=True, kw_only=True)
class Incident:
    """One injected incident of exactly one kind.

    ``duration_days`` bounds the effect (``None``: it lasts to the end of the
    period) so that an incident does not bleed into the next one's detection
    window. ``params`` holds the details the simulator (or the demo runner)
    needs beyond the headline effect size.
    """

    kind: str
    day: int
    start: datetime
    effect_size: float
    effect_unit: str
    max_delay_days: float
    touches: Mapping[str, Scalar]
    description: str
    duration_days: float | None = None
    params: Mapping[str, Scalar] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in INCIDENT_KINDS:
            raise ValueError(f"unknown incident kind {self.kind!r}; expected one of {INCIDENT_KINDS}")
        if self.day < 0:
            raise ValueError(f"incident day must be >= 0, got {self.day}")
        if self.start.tzinfo is None or self.start.utcoffset() != timedelta(0):
            raise ValueError(f"incident start must be a UTC datetime, got {self.start!r}")
        if self.max_delay_days <= 0:
            raise ValueError(f"max_delay_days must be > 0, got {self.max_delay_days}")
        if self.duration_days is not None and self.duration_days <= 0:
            raise ValueError(f"duration_days must be > 0 or None, got {self.duration_days}")
        if not self.effect_unit:
            raise ValueError("effect_unit must say what effect_size measures")
        object.__setattr__(self, "start", self.start.astimezone(UTC))
        object.__setattr__(self, "touches", MappingProxyType(dict(self.touches)))
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    @property
    def end(self) -> datetime | None:
        """When the effect stops (exclusive), or ``None`` if it persists."""
        if self.duration_days is None:
            return None
        return self.start + timedelta(days=self.duration_days)

    @property
    def deadline(self) -> datetime:
        """The latest detection time that still counts as a timely detection."""
        return self.start + timedelta(days=self.max_delay_days)

    def active_at(self, moment: datetime) -> bool:
        end = self.end
        return moment >= self.start and (end is None or moment < end)

    def to_dict(self) -> dict[str, Any]:
        end = self.end
        return {
            "kind": self.kind,
            "day": self.day,
            "start": self.start.isoformat(),
            "end": None if end is None else end.isoformat(),
            "duration_days": self.duration_days,
            "effect_size": self.effect_size,
            "effect_unit": self.effect_unit,
            "max_delay_days": self.max_delay_days,
            "deadline": self.deadline.isoformat(),
            "touches": dict(self.touches),
            "params": dict(self.params),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Incident:
        return cls(
            kind=str(data["kind"]),
            day=int(data["day"]),
            start=datetime.fromisoformat(str(data["start"]).replace("Z", "+00:00")),
            effect_size=float(data["effect_size"]),
            effect_unit=str(data["effect_unit"]),
            max_delay_days=float(data["max_delay_days"]),
            touches=dict(data.get("touches") or {}),
            description=str(data.get("description", "")),
            duration_days=None if data.get("duration_days") is None else float(data["duration_days"]),
            params=dict(data.get("params") or {}),
        )


@dataclass(frozen=True, kw_only=True)
class LatencyModelSpec:
    """What the demo runner must train and deploy for a latency regression.

    The simulator cannot deploy models; it only states which version is the
    slower one, what estimator it is, and when it goes live.
    """

    model_version: int
    estimator: str
    params: Mapping[str, Scalar]
    deploy_day: int
    deploy_time: datetime
    description: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_version": self.model_version,
            "estimator": self.estimator,
            "params": dict(self.params),
            "deploy_day": self.deploy_day,
            "deploy_time": self.deploy_time.isoformat(),
            "description": self.description,
        }


@dataclass(frozen=True, kw_only=True)
class Timeline:
    """A versioned, time-ordered tuple of incidents; empty means a fully stable period."""

    version: str = TIMELINE_VERSION
    incidents: tuple[Incident, ...] = ()

    def __post_init__(self) -> None:
        incidents = tuple(self.incidents)
        starts = [incident.start for incident in incidents]
        if starts != sorted(starts):
            raise ValueError("incidents must be in order of their start")
        object.__setattr__(self, "incidents", incidents)

    def of_kind(self, kind: str) -> tuple[Incident, ...]:
        if kind not in INCIDENT_KINDS:
            raise ValueError(f"unknown incident kind {kind!r}")
        return tuple(incident for incident in self.incidents if incident.kind == kind)

    def active_at(self, moment: datetime) -> tuple[Incident, ...]:
        return tuple(incident for incident in self.incidents if incident.active_at(moment))

    def until(self, end: datetime) -> Timeline:
        """The same timeline without the incidents that start at or after ``end``."""
        return Timeline(version=self.version, incidents=tuple(i for i in self.incidents if i.start < end))

    def latency_model_spec(self) -> LatencyModelSpec | None:
        """The slower model of the (first) latency regression, if there is one."""
        for incident in self.of_kind("latency_regression"):
            params = dict(incident.params)
            version = incident.touches.get("model_version")
            if not isinstance(version, int):
                raise ValueError("a latency_regression incident must touch an integer model_version")
            estimator = str(params.pop("estimator", "unspecified"))
            params.pop("model_version", None)
            return LatencyModelSpec(
                model_version=version,
                estimator=estimator,
                params=params,
                deploy_day=incident.day,
                deploy_time=incident.start,
                description=incident.description,
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "incidents": [incident.to_dict() for incident in self.incidents]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Timeline:
        incidents: Iterable[Mapping[str, Any]] = data.get("incidents") or ()
        return cls(version=str(data["version"]), incidents=tuple(Incident.from_dict(i) for i in incidents))


def stable_timeline() -> Timeline:
    """A timeline without incidents, for false-alarm baselines."""
    return Timeline(version=TIMELINE_VERSION, incidents=())


def default_timeline(
    *,
    start: datetime = DEFAULT_START,
    covariate_shift_day: int = 8,
    selection_bias_day: int = 16,
    software_change_day: int = 24,
    concept_drift_day: int = 30,
    adversarial_probing_day: int = 38,
    label_poisoning_day: int = 46,
    latency_regression_day: int = 56,
    covariate_shift_sd: float = 0.4,
    selection_bias_share: float = 0.12,
    software_change_multiplier: float = 60.0,
    concept_drift_auc_drop: float = 0.06,
    probing_share: float = 0.4,
    poisoning_flip_rate: float = 0.4,
    poisoning_share: float = 0.4,
    slow_model_trees: int = 300,
    data_incident_days: float = 4.0,
    label_delay_days: float = 14.0,
) -> Timeline:
    """The demo's seven incidents, one of each kind, spaced so each can be told apart.

    Data-level incidents (covariate shift, selection bias, software change) last
    ``data_incident_days`` and then revert, so that the stable days after them
    look like training again. The concept drift persists to the end: its effect
    only becomes visible when labels arrive ``label_delay_days`` (+ up to 2 days
    of jitter) later, so it is allowed ``label_delay_days + 7`` days of delay.
    The latency regression persists too (it is a deployment; rolling it back is
    the runner's business).
    """

    def at(day: int, hour: int) -> datetime:
        return start.astimezone(UTC) + timedelta(days=day, hours=hour)

    incidents = [
        Incident(
            kind="covariate_shift",
            day=covariate_shift_day,
            start=at(covariate_shift_day, 0),
            duration_days=data_incident_days,
            effect_size=covariate_shift_sd,
            effect_unit="sd of mean shift (stable-world sd of watch_hours)",
            max_delay_days=2.0,
            touches={"feature": "watch_hours"},
            params={"direction": "up"},
            description=(
                "A hit series launches: customers watch more, so the mean of watch_hours rises by "
                f"{covariate_shift_sd} standard deviations (every customer's watch time is scaled) "
                "while the relation of features to churn stays the same."
            ),
        ),
        Incident(
            kind="selection_bias",
            day=selection_bias_day,
            start=at(selection_bias_day, 0),
            duration_days=data_incident_days,
            effect_size=selection_bias_share,
            effect_unit="share of traffic",
            max_delay_days=2.0,
            touches={"country": "BR"},
            params={"country": "BR"},
            description=(
                "A marketing test in Brazil: customers from BR, a market absent from training, make up "
                f"about {selection_bias_share:.0%} of the traffic (their other features look like everyone else's)."
            ),
        ),
        Incident(
            kind="software_change",
            day=software_change_day,
            start=at(software_change_day, 10),
            duration_days=data_incident_days,
            effect_size=software_change_multiplier,
            effect_unit="multiplier",
            max_delay_days=1.0,
            touches={"client_id": "mobile-app", "client_version": "3.0.0", "feature": "watch_hours"},
            params={"previous_version": "2.3.0", "fixed_version": "3.0.1"},
            description=(
                "The mobile-app client deploys pipeline 3.0.0, which sends watch_hours in minutes "
                f"instead of hours (x{software_change_multiplier:g}) on its share of traffic; "
                "3.0.1 fixes it when the incident ends."
            ),
        ),
        Incident(
            kind="concept_drift",
            day=concept_drift_day,
            start=at(concept_drift_day, 0),
            duration_days=None,
            effect_size=concept_drift_auc_drop,
            effect_unit="AUC drop expected",
            max_delay_days=label_delay_days + 7.0,
            touches={"feature": "monthly_fee", "secondary_feature": "tenure_months", "target": "churned"},
            params={"base_rate": "unchanged"},
            description=(
                "A cheaper rival launches: churn becomes more price-sensitive and long tenure stops "
                "protecting, so a model fixed before the change loses about "
                f"{concept_drift_auc_drop:.2f} of AUC. Inputs are unchanged; it persists to the end."
            ),
        ),
        Incident(
            kind="adversarial_probing",
            day=adversarial_probing_day,
            start=at(adversarial_probing_day, 13),
            duration_days=3.0 / 24.0,
            effect_size=probing_share,
            effect_unit="share of traffic (probe rows per normal prediction of the day)",
            max_delay_days=1.0,
            touches={"client_id": "probe-7"},
            params={"client_version": "0.9.1", "hours": 3.0, "anchors": 4},
            description=(
                "Client probe-7 maps the decision boundary: over three hours it sends grid-like, tiny "
                "perturbations of a few customers whose churn probability is near 0.5."
            ),
        ),
        Incident(
            kind="label_poisoning",
            day=label_poisoning_day,
            start=at(label_poisoning_day, 9),
            duration_days=6.0 / 24.0,
            effect_size=poisoning_flip_rate,
            effect_unit="flip rate",
            max_delay_days=2.0,
            touches={"source": "partner-feed"},
            params={"records_share": poisoning_share, "hours": 6.0},
            description=(
                "A new feedback source, partner-feed, sends labels for recent predictions (before the "
                f"CRM export does), {poisoning_flip_rate:.0%} of them flipped."
            ),
        ),
        Incident(
            kind="latency_regression",
            day=latency_regression_day,
            start=at(latency_regression_day, 12),
            duration_days=None,
            effect_size=float(slow_model_trees),
            effect_unit="trees in the slower model (n_estimators)",
            max_delay_days=1.0,
            touches={"model_version": 2},
            params={
                "model_version": 2,
                "estimator": "random_forest",  # a loopwatch estimator name
                "n_estimators": slow_model_trees,
                "min_samples_leaf": 1,
            },
            description=(
                f"Model version 2, a {slow_model_trees}-tree random forest, is deployed: predictions get "
                "slower. The demo runner trains and deploys it at this time."
            ),
        ),
    ]
    incidents.sort(key=lambda incident: incident.start)
    return Timeline(version=TIMELINE_VERSION, incidents=tuple(incidents))
