"""The records loopwatch stores: prediction events, requests, training runs,
rejections, software fingerprints, labels and business metrics, incidents,
monitoring configurations and rebaselines. Frozen dataclasses, no I/O."""

from loopwatch.records.events import (
    REQUEST_TYPES,
    EventColumns,
    LoggedRequest,
    PredictionEvent,
    Rejection,
    RequestOutcome,
    TrainingEvent,
)
from loopwatch.records.feedback import BusinessObservation, Label, LabelOutcome, StoredLabel
from loopwatch.records.fingerprint import Fingerprint, software_fingerprint
from loopwatch.records.incidents import (
    INCIDENT_STATUSES,
    LOOPS,
    ConfigVersion,
    IncidentRecord,
    Rebaseline,
)
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.records.registry import ALIASES, AliasChange, ModelInfo, ModelSettings, ModelVersion

__all__ = [
    "ALIASES",
    "INCIDENT_STATUSES",
    "LOOPS",
    "AliasChange",
    "BusinessObservation",
    "ConfigVersion",
    "EventColumns",
    "IncidentRecord",
    "Label",
    "LabelOutcome",
    "Rebaseline",
    "StoredLabel",
    "ModelInfo",
    "ModelSettings",
    "ModelVersion",
    "REQUEST_TYPES",
    "Fingerprint",
    "LoggedRequest",
    "PredictionEvent",
    "Rejection",
    "RequestOutcome",
    "TrainingEvent",
    "dumps",
    "loads",
    "software_fingerprint",
]
