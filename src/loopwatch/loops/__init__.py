"""Diagnosis and the loop engine: which feedback loop to take, with its evidence.

Pure code over plain evidence: :mod:`loopwatch.application.monitoring.loops_runner` gathers the
evidence from the store and calls in here.
"""

from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.loops.diagnosis import diagnose_labels, diagnose_window
from loopwatch.loops.engine import loop_of, merge_findings, recommendations
from loopwatch.loops.evidence import LabelEvidence, SoftwareChange, WindowEvidence
from loopwatch.loops.gate import GateDecision, promotion_gate
from loopwatch.loops.labelling import QueueItem, select_for_labelling
from loopwatch.loops.kinds import DEFAULT_LOOP, INCIDENT_KINDS, LOOP_TITLES, LOOPS, SIGNALS
from loopwatch.loops.report import Finding, Incident, LoopReport, Recommendation

__all__ = [
    "DEFAULT_LOOP",
    "INCIDENT_KINDS",
    "LOOPS",
    "LOOP_TITLES",
    "SIGNALS",
    "Finding",
    "GateDecision",
    "QueueItem",
    "Incident",
    "LabelEvidence",
    "LoopReport",
    "MonitoringConfig",
    "Recommendation",
    "SoftwareChange",
    "WindowEvidence",
    "diagnose_labels",
    "diagnose_window",
    "loop_of",
    "merge_findings",
    "promotion_gate",
    "recommendations",
    "select_for_labelling",
]
