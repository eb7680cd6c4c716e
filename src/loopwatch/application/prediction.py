"""Predict: validate rows against the version's schema, run the model, build the log record.

This is the core of ``POST /v1/models/{name}/predict`` and of ``loopwatch
predict``; it does no I/O of its own beyond loading the model through the
registry, and hands back the :class:`LoggedRequest` for the caller to commit
before it answers.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from loopwatch.application.configs import load_monitoring_config
from loopwatch.errors import IntegrityError, InvalidInput, echo
from loopwatch.features import validate_rows
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.models.defences import apply_defences
from loopwatch.records import LoggedRequest, ModelVersion, software_fingerprint
from loopwatch.records.jsonutil import dumps
from loopwatch.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from loopwatch.detectors.adversarial import AdversarialDetector

_log = logging.getLogger("loopwatch.application.prediction")

MAX_REQUEST_ID_LENGTH = 128
#: Seconds a model's monitoring configuration (its response defences) is trusted per process.
CONFIG_TTL_SECONDS = 1.0
MAX_ENTITY_ID_LENGTH = 200


@dataclass(frozen=True, kw_only=True)
class PredictCall:
    """One predict request as the core sees it, whatever edge it came from."""

    model_name: str
    rows: Sequence[Any]
    version: int | str | None = None
    request_id: str | None = None
    client_id: str | None = None
    client_version: str | None = None
    request_type: str = "api"
    #: Event time for every row (replays and backfills); ``None`` means now.
    timestamp: datetime | None = None
    #: Event time per row; overrides ``timestamp``.
    timestamps: Sequence[datetime] | None = None
    #: The entity each row is about (a customer, an order), for labels that arrive
    #: later by entity; ``None`` entries for rows without one.
    entity_ids: Sequence[str | None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def body_sha256(self) -> str:
        """Hash of what the caller asked for, to tell a retry from a reuse of its id."""
        body: dict[str, Any] = {
            "model": self.model_name,
            "version": self.version,
            "rows": list(self.rows),
            "timestamp": self.timestamp,
            "timestamps": list(self.timestamps) if self.timestamps is not None else None,
            "request_type": self.request_type,
            "client_version": self.client_version,
        }
        if self.entity_ids is not None:
            # only when given, so requests without entity ids keep the hashes they had
            body["entity_ids"] = list(self.entity_ids)
        canonical = dumps(body)
        return hashlib.sha256(canonical).hexdigest()


def new_request_id() -> str:
    return uuid.uuid4().hex


#: Shadow scoring logs the candidate's answer under the served request's id plus this.
SHADOW_SUFFIX = ":shadow"


def check_request_id(request_id: str) -> str:
    if (
        not request_id
        or len(request_id) > MAX_REQUEST_ID_LENGTH
        or not all(c.isalnum() or c in "-_.:" for c in request_id)
    ):
        raise InvalidInput(
            f"request id must be 1-{MAX_REQUEST_ID_LENGTH} characters of letters, digits, '-', '_', '.' or ':'"
        )
    return request_id


def check_client_request_id(request_id: str) -> str:
    """A request id a client chose: valid, and not one shadow scoring keeps for itself."""
    if check_request_id(request_id).endswith(SHADOW_SUFFIX):
        raise InvalidInput(f"request ids ending in {echo(SHADOW_SUFFIX)} are kept for shadow scoring")
    return request_id


def _utc(moment: datetime, what: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput(f"{what} must carry a timezone, e.g. 2026-01-05T10:00:00Z")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError as exc:  # e.g. 9999-12-31T23:00:00-05:00 is past datetime.max in UTC
        raise InvalidInput(f"{what} is out of range") from exc


class Predictor:
    def __init__(self, registry: Registry, *, max_rows: int = 10_000) -> None:
        self.registry = registry
        self.max_rows = max_rows
        self._configs: dict[str, tuple[float, MonitoringConfig]] = {}
        self._detectors: dict[str, AdversarialDetector | None] = {}
        self._detector_lock = threading.Lock()

    def predict(self, call: PredictCall) -> LoggedRequest:
        """Run the model on ``call``; the response is inside the returned record."""
        started = time.perf_counter()
        received_at = datetime.now(timezone.utc)
        request_id = check_request_id(call.request_id) if call.request_id else new_request_id()
        loaded = self.registry.load(call.model_name, call.version)
        meta = loaded.version
        settings = self.registry.settings(meta.name)
        validated = validate_rows(meta.schema, call.rows, max_rows=self.max_rows, nullable=settings.nullable,
                                  imputes=loaded.imputes)
        timestamps = self._timestamps(call, validated.n_rows)
        entity_ids = check_entity_ids(call.entity_ids, validated.n_rows)
        probabilities = None
        guard = self._config(meta.name)
        # evasion defences change what the model sees; the log keeps what the client sent
        model_input = validated.frame
        if guard.defences:
            model_input = apply_defences(validated.frame, meta.schema, guard.defences)
        detector = self._adversarial_detector(meta)
        model: Any = loaded.pipeline
        if detector is not None:  # scores the raw rows (what the client sent) in the same model call
            from loopwatch.detectors.adversarial_runtime import ProbedModel

            model = ProbedModel(detector, loaded.pipeline, validated.frame, fpr=guard.adversarial_fpr)
        try:
            # extreme but finite inputs can overflow to infinity when scaled: no numpy
            # warning for that, scikit-learn's finiteness check refuses it (ValueError)
            with np.errstate(over="ignore"):
                if meta.task == "classification" and hasattr(loaded.pipeline, "predict_proba"):
                    # one pass through the pipeline: the label is the most probable class,
                    # which is what scikit-learn's classifiers predict
                    proba = np.asarray(model.predict_proba(model_input))
                    predictions = np.asarray(loaded.pipeline.classes_)[proba.argmax(axis=1)]
                    probabilities = proba.tolist()
                else:
                    predictions = model.predict(model_input)
        except ValueError as exc:  # values the model cannot take are the caller's to fix
            raise InvalidInput(f"the model cannot score these rows: {str(exc)[:200]}") from exc
        prediction_lists = [_as_list(p) for p in np.asarray(predictions).tolist()]
        row_summaries = validated.row_summaries()
        if detector is not None:
            row_summaries = [{**summary, **score.to_dict()} for summary, score in zip(row_summaries, model.scores())]
        runtime_ms = (time.perf_counter() - started) * 1000
        response: dict[str, Any] = {
            "request_id": request_id,
            "model": meta.name,
            "version": meta.version,
            "predictions": prediction_lists,
        }
        if probabilities is not None:
            # extraction defences: the answer is coarsened or withheld, the event keeps it all
            config = self._config(meta.name)
            if not config.withhold_probabilities:
                response["probabilities"] = (
                    probabilities if config.probability_decimals is None
                    else np.round(np.asarray(probabilities), config.probability_decimals).tolist()
                )
            response["classes"] = list(meta.schema.classes)
        return LoggedRequest(
            request_id=request_id,
            model_name=meta.name,
            model_version=meta.version,
            request_type=call.request_type,
            client_id=call.client_id,
            fingerprint=software_fingerprint(meta.artifact_sha256, call.client_version),
            body_sha256=call.body_sha256(),
            response=dumps(response),
            runtime_ms=runtime_ms,
            received_at=received_at,
            replayed=timestamps is not None,
            predictions=prediction_lists,
            probabilities=probabilities,
            request_summary=validated.request_summary(),
            row_summaries=row_summaries,
            data=validated.rows if settings.log_data else None,
            timestamps=timestamps,
            entity_ids=entity_ids,
        )

    def _adversarial_detector(self, meta: ModelVersion) -> AdversarialDetector | None:
        """The version's adversarial detector, from its training profile (loaded once per
        process; a rebaseline moves the drift reference, not what the model was trained on)."""
        sha = meta.profile_sha256
        if sha is None:
            return None
        with self._detector_lock:
            if sha not in self._detectors:
                try:
                    detector = self.registry.profile(meta.name, meta.version, training=True).adversarial
                except IntegrityError as exc:
                    # the model answers as before; the missing scores show in the log and here
                    _log.error("integrity alarm: the reference profile of model %r version %d was refused (%s); "
                               "its predictions are logged without adversarial scores", meta.name, meta.version, exc)
                    detector = None
                self._detectors[sha] = detector
                while len(self._detectors) > self.registry.cache_size:
                    self._detectors.pop(next(iter(self._detectors)))
            return self._detectors[sha]

    def _config(self, name: str) -> MonitoringConfig:
        """The model's monitoring configuration, trusted for a second like its settings."""
        now = time.monotonic()
        cached = self._configs.get(name)
        if cached is not None and now - cached[0] < CONFIG_TTL_SECONDS:
            return cached[1]
        config, _ = load_monitoring_config(self.registry.store, name)
        self._configs[name] = (now, config)
        return config

    @staticmethod
    def _timestamps(call: PredictCall, n_rows: int) -> list[datetime] | None:
        if call.timestamps is not None:
            if len(call.timestamps) != n_rows:
                raise InvalidInput(
                    f"timestamps has {len(call.timestamps)} entries for {n_rows} rows"
                )
            return [_utc(t, "timestamps") for t in call.timestamps]
        if call.timestamp is not None:
            return [_utc(call.timestamp, "timestamp")] * n_rows
        return None


def check_entity_ids(entity_ids: Sequence[Any] | None, n_rows: int) -> list[str | None] | None:
    """One entity id (a non-empty string of at most 200 characters, or null) per row."""
    if entity_ids is None:
        return None
    if isinstance(entity_ids, (str, bytes)) or len(entity_ids) != n_rows:
        raise InvalidInput(f"entity_ids must be a list with one entry per row ({n_rows})")
    out: list[str | None] = []
    for i, entity in enumerate(entity_ids):
        if entity is not None and (
            not isinstance(entity, str)
            or not entity
            or len(entity) > MAX_ENTITY_ID_LENGTH
            or "\x00" in entity
        ):
            raise InvalidInput(
                f"entity_ids[{i}] must be null or a string of 1-{MAX_ENTITY_ID_LENGTH} "
                "characters without NUL"
            )
        out.append(entity)
    return out


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]
