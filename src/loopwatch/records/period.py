"""A span of event time, ``[since, until)``: the one place its rules are checked.

Either end may be open. Both ends carry a timezone (an hour of "local" time means a
different hour on every machine), and ``since`` comes before ``until``.

>>> from datetime import datetime, timezone
>>> day = Period(since=datetime(2026, 1, 5, tzinfo=timezone.utc), until=datetime(2026, 1, 6, tzinfo=timezone.utc))
>>> day.contains(datetime(2026, 1, 5, 12, tzinfo=timezone.utc)), day.contains(day.until)
(True, False)
>>> Period(since=datetime(2026, 1, 5))
Traceback (most recent call last):
...
loopwatch.errors.InvalidInput: since must carry a timezone, e.g. 2026-01-05T00:00:00Z
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from loopwatch.errors import InvalidInput


@dataclass(frozen=True, kw_only=True)
class Period:
    since: datetime | None = None
    until: datetime | None = None

    def __post_init__(self) -> None:
        for moment, what in ((self.since, "since"), (self.until, "until")):
            if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
                raise InvalidInput(f"{what} must carry a timezone, e.g. 2026-01-05T00:00:00Z")
        if self.since is not None and self.until is not None and self.since >= self.until:
            raise InvalidInput("since must be before until")

    def contains(self, moment: datetime) -> bool:
        return (self.since is None or moment >= self.since) and (self.until is None or moment < self.until)
