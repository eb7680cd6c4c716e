"""What one service process holds: settings, store, registry, writer, metrics."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from fastapi import Request

from loopwatch.config import Settings
from loopwatch.application.ingestion import Ingestor
from loopwatch.application.prediction import Predictor
from loopwatch.application.summaries import Summariser
from loopwatch.records import Rejection
from loopwatch.records.names import is_model_name
from loopwatch.registry import Registry
from loopwatch.service.metrics import ServiceMetrics
from loopwatch.service.shadow import ShadowScorer
from loopwatch.stores.base import Store
from loopwatch.stores.writer import GroupCommitWriter

PREDICT_PATH = re.compile(r"^/v1/models/([^/]+)/predict$")

#: Headers a client identifies itself with.
CLIENT_ID_HEADER = "x-client-id"
CLIENT_VERSION_HEADER = "x-client-version"
REQUEST_ID_HEADER = "x-request-id"


@dataclass
class ServiceState:
    settings: Settings
    store: Store
    registry: Registry
    predictor: Predictor
    writer: GroupCommitWriter
    metrics: ServiceMetrics
    shadow: ShadowScorer | None = None
    #: Validates and encodes events a model made elsewhere (``POST .../events``).
    ingestor: Ingestor | None = None
    #: Keeps window summaries as events land (``None`` when summaries are off).
    summariser: Summariser | None = None

    def reject(
        self, model_name: str, client_id: str | None, reason: str, status: int, message: str
    ) -> None:
        """Count a refused predict request, for data-quality monitoring.

        A name that breaks the name rule is no model's: such a request is counted in the
        metrics but leaves no row naming it in the store."""
        self.metrics.rejections.labels(reason=reason).inc()
        if not is_model_name(model_name):
            return
        self.writer.submit_rejection(
            Rejection(
                model_name=model_name,
                timestamp=datetime.now(timezone.utc),
                client_id=client_id[:200] if client_id else None,
                reason=reason,
                status=status,
                message=message[:1000],
            )
        )


def get_state(request: Request) -> ServiceState:
    state: ServiceState = request.app.state.loopwatch
    return state


def predict_model_name(path: str) -> str | None:
    match = PREDICT_PATH.match(path)
    return match.group(1) if match and is_model_name(match.group(1)) else None
