"""The usual gap between realized and label-free estimated performance, kept a no-drift baseline.

The label-free estimate of a version carries a bias of its own (its calibration saw one
holdout), so the concept test judges each window's departure (realized below estimated)
against the usual departure of earlier windows. That usual gap must describe windows without
a drift. A window that does not clear the per-window bar may still be part of a drift that
the pooled CUSUM (:mod:`loopwatch.stats.cusum`) is building evidence of; admitting it at once
raises the usual gap by the drift itself, every later window of the drift then looks smaller
against it, and the pooled test is slowed by the very drift it is accumulating.

So a window's departure enters the baseline only once ``delay`` later windows have been
judged: a drift has that many windows to be found before its own windows can hide it. The
delay is the same whatever the windows showed. Holding back only the windows of a CUSUM run
that is still building (those that raised the sum) was measured too, and rejected: the
baseline then keeps only windows that happened to lie low, the later scores drift upward,
runs grow longer, and on no-shift departures the pooled test alarmed on about 18 % of
60-window series instead of 2 %; on one demo log it froze the baseline at its first five
windows for good. The windows judged before there is a baseline form it at once: they are
judged against the estimate alone, and holding them back would lengthen that phase.

Windows found drifting on their own never enter. Each departure is dated by the moment the
window that admitted it was judged, so a test never uses what was not known at its moment.
The false-alarm rate of the concept tests with this baseline, on no-shift departures, is
measured in ``tests/monitoring/test_concept_baseline.py`` and stated in docs/loops.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

#: Later windows judged before a window's departure counts as usual.
BASELINE_DELAY = 5

#: A moment: a datetime in the monitoring, any ordered value in simulations.
T = TypeVar("T", datetime, float, int)


@dataclass
class ConceptBaseline(Generic[T]):
    """The departures of one version's windows that count as usual, each from the moment it
    was admitted."""

    delay: int = BASELINE_DELAY
    admitted: list[tuple[T, float]] = field(default_factory=list)
    #: Judged windows waiting for ``delay`` later ones: when each was known and its departure,
    #: None when the window was found drifting (it holds its place in the count, never enters).
    waiting: list[tuple[T, float | None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.delay < 0:
            raise ValueError("delay must be >= 0")

    def known(self, at: T) -> list[float]:
        """The departures admitted by ``at``."""
        return [departure for moment, departure in self.admitted if moment <= at]

    def record(self, *, at: T, departure: float, drifted: bool, baselined: bool) -> None:
        """A window's final test: its departure, known at ``at``.

        ``drifted`` says the window was found drifting on its own; ``baselined`` says it was
        judged against the baseline (``False`` while there was none yet)."""
        if not baselined:
            if not drifted:
                self.admitted.append((at, departure))
            return
        self.waiting.append((at, None if drifted else departure))
        while len(self.waiting) > self.delay:
            known_at, oldest = self.waiting.pop(0)
            if oldest is not None:
                self.admitted.append((max(at, known_at), oldest))
