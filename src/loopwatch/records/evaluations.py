"""What the store keeps of scheduled evaluations: each failure with its cause, and per model
the time of the last success and of the last failure. Frozen dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from loopwatch.records.jsonutil import utc_iso


@dataclass(frozen=True, kw_only=True)
class EvaluationFailure:
    """One scheduled evaluation that failed: when, and why (the error's type and message)."""

    model_name: str
    failed_at: datetime
    #: The error's type, e.g. ``InvalidInput`` or ``OperationalError``.
    cause: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model_name, "failed_at": utc_iso(self.failed_at), "cause": self.cause,
                "message": self.message}


@dataclass(frozen=True, kw_only=True)
class EvaluationStatus:
    """A model's scheduled evaluations so far: the last success, the last failure, the failures."""

    model_name: str
    last_success_at: datetime | None
    last_failure_at: datetime | None
    failures: int

    @property
    def failing(self) -> bool:
        """The latest evaluation failed (none has succeeded since)."""
        return self.last_failure_at is not None and (
            self.last_success_at is None or self.last_failure_at > self.last_success_at
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "last_success_at": None if self.last_success_at is None else utc_iso(self.last_success_at),
            "last_failure_at": None if self.last_failure_at is None else utc_iso(self.last_failure_at),
            "failures": self.failures,
            "failing": self.failing,
        }
