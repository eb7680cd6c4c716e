"""Ingest: check events a model made elsewhere and encode them for the store.

This is the core of ``POST /v1/models/{name}/events`` (and of the row-wise path of
``loopwatch ingest``). It validates every event as predict validates a row (the
features against the model's schema through :func:`~loopwatch.features.validate_rows`,
plus the prediction, probabilities, time, ids and latency), reports every problem
at once, and only then turns external version labels into integer versions. The
result is an :class:`~loopwatch.records.ingest.IngestBatch` for the writer.

Nulls: the prediction has already been made and served, so a null in a feature is
accepted and counted as missing (the monitor reports nulls in features the schema
does not declare nullable) rather than losing the record of a served prediction.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from loopwatch.errors import InvalidInput, PayloadTooLarge, SchemaViolation, echo
from loopwatch.features import validate_rows
from loopwatch.features.validate import MAX_REPORTED_PROBLEMS
from loopwatch.application.prediction import MAX_ENTITY_ID_LENGTH, SHADOW_SUFFIX
from loopwatch.records import ModelVersion, software_fingerprint
from loopwatch.records.fingerprint import Fingerprint
from loopwatch.records.ingest import INGESTED_REQUEST_TYPE, NO_LATENCY, IngestBatch
from loopwatch.records.jsonutil import dumps
from loopwatch.registry import Registry
from loopwatch.stores.base import to_micros

MAX_INGEST_REQUEST_ID_LENGTH = 200
MAX_LABEL_LENGTH = 100
#: A day: a longer "latency" is a unit mistake (seconds sent as milliseconds twice over).
MAX_LATENCY_MS = 86_400_000.0
#: How far a probability row may sum from 1 (rounding in the sender's serialisation).
PROBABILITY_SUM_TOLERANCE = 0.01
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


@dataclass(frozen=True, kw_only=True)
class IngestCall:
    """One batch of external events as the core sees it, whatever edge it came from."""

    model_name: str
    #: Events as mappings with the contract's fields (absent fields may be missing or None).
    events: Sequence[Mapping[str, Any]]
    #: Who sent them: the key's id when auth is on.
    client_id: str | None = None


class Ingestor:
    def __init__(self, registry: Registry, *, max_events: int = 10_000) -> None:
        self.registry = registry
        self.max_events = max_events

    def prepare(self, call: IngestCall) -> IngestBatch:
        """Validate and encode ``call``; raise :class:`SchemaViolation` listing every problem."""
        events = call.events
        if not events:
            raise InvalidInput("events must hold at least one event")
        if len(events) > self.max_events:
            raise PayloadTooLarge(f"{len(events)} events sent; at most {self.max_events} events per request")
        base = self.registry.resolve(call.model_name)
        settings = self.registry.settings(base.name)
        received = datetime.now(timezone.utc)
        problems: list[dict[str, Any]] = []
        features = [e.get("features") for e in events]
        validated = None
        try:
            validated = validate_rows(base.schema, features, nullable=settings.nullable,
                                      imputes=[f.name for f in base.schema.features])
        except SchemaViolation as exc:
            for p in (exc.detail or {}).get("problems", []):
                field_name = "features" if p["feature"] is None else f"features.{p['feature']}"
                problems.append({"event": p["row"], "field": field_name, "problem": p["problem"]})
        checked = [_check_event(i, e, base, problems) for i, e in enumerate(events)]
        if problems:
            problems.sort(key=lambda p: p["event"])
            shown = problems[:MAX_REPORTED_PROBLEMS]
            worst = shown[0]
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise SchemaViolation(f"event {worst['event']}, {worst['field']}: {worst['problem']}{more}",
                                  detail={"problems": shown})
        assert validated is not None
        labels = sorted({c.label for c in checked if c.label is not None})
        versions = {label: self.registry.store.resolve_external_version(
            base.name, label, base_version=base.version, created_at=received) for label in labels}
        batch_id = f"ingest-{uuid.uuid4().hex}"
        summaries = validated.row_summaries()
        rows: list[tuple[Any, ...]] = []
        fingerprints: dict[str, Fingerprint] = {}
        requests: dict[str, tuple[int, int]] = {}
        logged_at = to_micros(received)
        default_ts = to_micros(received)
        encode = dumps
        for i, c in enumerate(checked):
            version = base.version if c.label is None else versions[c.label]
            fp = software_fingerprint(base.artifact_sha256, c.client_version)
            fingerprints[fp.id] = fp
            request_id = c.request_id or batch_id
            ts = default_ts if c.timestamp is None else to_micros(c.timestamp)
            count, first = requests.get(request_id, (0, ts))
            requests[request_id] = (count + 1, min(first, ts))
            latency = NO_LATENCY if c.latency_ms is None else c.latency_ms
            rows.append((
                request_id, i if c.row_index is None else c.row_index, base.name, version, ts, logged_at,
                latency, latency, encode(c.prediction).decode(),
                None if c.probabilities is None else encode(c.probabilities).decode(),
                encode(summaries[i]).decode(),
                encode(validated.rows[i]).decode() if settings.log_data else None,
                INGESTED_REQUEST_TYPE, call.client_id, fp.id, int(c.timestamp is not None), c.entity_id,
                c.content_sha256,
            ))
        return IngestBatch(model_name=base.name, rows=rows, fingerprints=fingerprints, requests=requests,
                           versions=versions)


@dataclass(frozen=True)
class _Checked:
    request_id: str | None
    row_index: int | None
    timestamp: datetime | None
    prediction: list[Any]
    probabilities: list[float] | None
    entity_id: str | None
    label: str | None
    client_version: str | None
    latency_ms: float | None
    content_sha256: str


def _check_event(index: int, event: Mapping[str, Any], meta: ModelVersion, problems: list[dict[str, Any]]) -> _Checked:
    """The event's fields, checked; each problem is appended to ``problems``."""

    def problem(field_name: str, message: str) -> None:
        problems.append({"event": index, "field": field_name, "problem": message})

    request_id = event.get("request_id")
    if request_id is not None and not _valid_id(request_id):
        problem("request_id", f"must be 1-{MAX_INGEST_REQUEST_ID_LENGTH} characters of letters, digits, "
                f"'-', '_', '.' or ':', not ending in {echo(SHADOW_SUFFIX)}")
    row_index = event.get("row_index")
    if row_index is not None and (type(row_index) is not int or not 0 <= row_index < 2**31):
        problem("row_index", "must be an integer from 0 to 2147483647")
    timestamp = event.get("timestamp")
    if timestamp is not None:
        timestamp = _aware(timestamp, problem)
    prediction = _prediction(event.get("prediction"), meta, problem)
    probabilities = _probabilities(event.get("probabilities"), meta, problem)
    entity_id = event.get("entity_id")
    if entity_id is not None and (not isinstance(entity_id, str) or not 0 < len(entity_id) <= MAX_ENTITY_ID_LENGTH
                                  or "\x00" in entity_id):
        problem("entity_id", f"must be null or a string of 1-{MAX_ENTITY_ID_LENGTH} characters without NUL")
    label = _text(event.get("model_version"), "model_version", problem)
    client_version = _text(event.get("client_version"), "client_version", problem)
    latency = event.get("latency_ms")
    if latency is not None:
        if isinstance(latency, bool) or not isinstance(latency, (int, float)) or not (
                math.isfinite(latency) and 0 <= latency <= MAX_LATENCY_MS):
            problem("latency_ms", f"must be a number of milliseconds from 0 to {MAX_LATENCY_MS:.0f}")
            latency = None
        else:
            latency = float(latency)
    content = {
        "model": meta.name, "features": event.get("features"), "prediction": prediction,
        "probabilities": probabilities, "timestamp": timestamp, "entity_id": entity_id,
        "model_version": label, "client_version": client_version, "latency_ms": latency,
    }
    try:
        sha = hashlib.sha256(dumps(content)).hexdigest()
    except (TypeError, ValueError):  # only reached for content already reported as a problem
        sha = ""
    return _Checked(request_id if isinstance(request_id, str) else None,
                    row_index if type(row_index) is int else None, timestamp, prediction, probabilities,
                    entity_id if isinstance(entity_id, str) else None, label, client_version, latency, sha)


def _valid_id(value: Any) -> bool:
    return (isinstance(value, str) and 0 < len(value) <= MAX_INGEST_REQUEST_ID_LENGTH
            and all(c in _ID_CHARS for c in value) and not value.endswith(SHADOW_SUFFIX))


def _aware(value: Any, problem: Any) -> datetime | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            problem("timestamp", "must be an ISO-8601 time with a timezone")
            return None
    if not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None:
        problem("timestamp", "must be an ISO-8601 time with a timezone, e.g. 2026-03-01T12:00:00Z")
        return None
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        problem("timestamp", "is out of range")
        return None


def _text(value: Any, field_name: str, problem: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_LABEL_LENGTH or "\x00" in value:
        problem(field_name, f"must be a string of 1-{MAX_LABEL_LENGTH} characters without NUL")
        return None
    return value


def _scalar_ok(value: Any) -> bool:
    if isinstance(value, bool) or value is None:
        return isinstance(value, bool)
    if isinstance(value, (int, float)):
        return math.isfinite(value) and abs(value) < 2.0**63
    return isinstance(value, str) and 0 < len(value) <= MAX_LABEL_LENGTH


def _prediction(value: Any, meta: ModelVersion, problem: Any) -> list[Any]:
    values = value if isinstance(value, list) else [value]
    if value is None or not values or len(values) > 100 or not all(_scalar_ok(v) for v in values):
        problem("prediction", "must be a number, string or boolean (or a list of them, for several outputs)")
        return []
    if meta.task == "classification" and meta.schema.classes:
        by_label = {str(c): c for c in meta.schema.classes}
        out = []
        for v in values:
            label = ("true" if v else "false") if isinstance(v, bool) else (
                str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
            if label not in by_label:
                problem("prediction", f"{echo(label[:100])} is not one of the model's classes")
                return []
            out.append(by_label[label])  # the class as the model's schema holds it
        return out
    if meta.task == "regression" and not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        problem("prediction", "a regression model's prediction must be a number")
        return []
    return list(values)


def _probabilities(value: Any, meta: ModelVersion, problem: Any) -> list[float] | None:
    if value is None:
        return None
    classes = [str(c) for c in meta.schema.classes]
    if meta.task != "classification" or not classes:
        problem("probabilities", "only a classifier's events carry probabilities")
        return None
    if isinstance(value, dict):
        unknown = [k for k in value if k not in classes]
        if unknown or len(value) != len(classes):
            problem("probabilities", f"must name each of the model's classes once: {', '.join(classes)[:200]}")
            return None
        value = [value[c] for c in classes]
    if not isinstance(value, list) or len(value) != len(classes):
        problem("probabilities", f"must be an object class -> probability or a list of {len(classes)} numbers")
        return None
    if not all(isinstance(p, (int, float)) and not isinstance(p, bool) and math.isfinite(p) and 0 <= p <= 1
               for p in value):
        problem("probabilities", "each probability must be a number from 0 to 1")
        return None
    if abs(sum(value) - 1.0) > PROBABILITY_SUM_TOLERANCE:
        problem("probabilities", f"must sum to 1 (within {PROBABILITY_SUM_TOLERANCE})")
        return None
    return [float(p) for p in value]
