"""Registry records: model versions, aliases and per-model settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from loopwatch.records.schema import FeatureSchema
from loopwatch.records.jsonutil import utc_iso

#: Aliases a version can hold; ``production`` is served when no version is named.
ALIASES = ("production", "candidate")


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """Per-model choices that outlive any one version."""

    #: Log the input features with each event (off for privacy).
    log_data: bool = True
    #: Days events are kept; ``None`` keeps them until deleted.
    retention_days: int | None = None
    #: Features declared nullable after training: a null in one is accepted and counted as
    #: missing, without the data-quality finding an undeclared null gets.
    nullable: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"log_data": self.log_data, "retention_days": self.retention_days, "nullable": list(self.nullable)}


@dataclass(frozen=True, kw_only=True)
class ModelVersion:
    name: str
    version: int
    created_at: datetime
    task: str
    estimator: str
    artifact_sha256: str
    reference_sha256: str
    schema: FeatureSchema
    metrics: dict[str, Any]
    data_summary: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    #: The reference profile for drift monitoring; ``None`` for versions registered without one.
    profile_sha256: str | None = None
    aliases: tuple[str, ...] = ()

    def to_dict(self, *, with_schema: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "version": self.version,
            "created_at": utc_iso(self.created_at),
            "task": self.task,
            "estimator": self.estimator,
            "artifact_sha256": self.artifact_sha256,
            "reference_sha256": self.reference_sha256,
            "profile_sha256": self.profile_sha256,
            "metrics": self.metrics,
            "params": self.params,
            "aliases": list(self.aliases),
        }
        if with_schema:
            out["schema"] = self.schema.to_dict()
        return out


@dataclass(frozen=True, kw_only=True)
class ModelInfo:
    name: str
    created_at: datetime
    settings: ModelSettings
    aliases: dict[str, int]
    latest_version: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created_at": utc_iso(self.created_at),
            "settings": self.settings.to_dict(),
            "aliases": self.aliases,
            "latest_version": self.latest_version,
        }


@dataclass(frozen=True, kw_only=True)
class AliasChange:
    name: str
    alias: str
    version: int | None
    previous_version: int | None
    changed_at: datetime
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "alias": self.alias,
            "version": self.version,
            "previous_version": self.previous_version,
            "changed_at": utc_iso(self.changed_at),
            "reason": self.reason,
        }
