"""The records loopwatch stores: prediction events, requests, training runs,
rejections and software fingerprints. Frozen dataclasses, no I/O."""

from loopwatch.records.events import (
    REQUEST_TYPES,
    LoggedRequest,
    PredictionEvent,
    Rejection,
    RequestOutcome,
    TrainingEvent,
)
from loopwatch.records.fingerprint import Fingerprint, software_fingerprint
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.records.registry import ALIASES, AliasChange, ModelInfo, ModelSettings, ModelVersion

__all__ = [
    "ALIASES",
    "AliasChange",
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
