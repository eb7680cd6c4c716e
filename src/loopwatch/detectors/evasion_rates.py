"""Which clients send inputs that the evasion score flags more often than it should?

Every logged prediction carries the adversarial detector's flag (its score above
the threshold for the model's ``adversarial_fpr``, calibrated on clean reference
rows). Over a window, a client's flagged share is tested twice, one-sided, with
:func:`loopwatch.stats.rates.rate_test`: against the calibration rows' share at
that threshold (is it above the stated false-positive rate?) and against the
other clients' share in the same window (does it stand out, or is everyone's
traffic moving?). A client is a suspect when both tests reject at ``alpha``
divided by the number of clients tested (Bonferroni), so a window with many
clients raises no more false suspects than a window with one.

A window whose inputs drifted raises every client's scores: the monitor calls
this only where the inputs held. A client alone in its window has no others to
stand out from; it is tested against the calibration only.

>>> flags = {"web": [False] * 990 + [True] * 10, "probe": [False] * 60 + [True] * 40}
>>> found = evasion_by_client(flags, k_calibration=10, n_calibration=1000)
>>> [(c.client_id, c.suspect) for c in found]
[('probe', True), ('web', False)]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

from loopwatch.errors import InvalidInput
from loopwatch.stats.rates import rate_test


@dataclass(frozen=True)
class ClientEvasion:
    client_id: str | None
    n_rows: int
    n_flagged: int
    rate: float
    #: The calibration rows' flagged share at the same threshold (about ``adversarial_fpr``).
    calibrated_rate: float
    #: The other clients' flagged share in the window (None when the client was alone).
    others_rate: float | None
    p_calibration: float
    p_others: float | None
    #: The level each test is held to: ``alpha`` over the number of clients tested.
    level: float
    suspect: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evasion_by_client(
    flags: Mapping[str | None, Sequence[bool]],
    *,
    k_calibration: int,
    n_calibration: int,
    alpha: float = 0.01,
    min_rows: int = 30,
) -> list[ClientEvasion]:
    """Each client with at least ``min_rows`` scored rows, most flagged share first."""
    if not 0 < alpha < 1:
        raise InvalidInput("alpha must lie in (0, 1)")
    if not isinstance(min_rows, int) or min_rows < 1:
        raise InvalidInput("min_rows must be a positive integer")
    counts = {client: (sum(bool(f) for f in values), len(values)) for client, values in flags.items()}
    tested = [client for client, (_, n) in counts.items() if n >= min_rows]
    if not tested:
        return []
    level = alpha / len(tested)
    k_all = sum(k for k, _ in counts.values())
    n_all = sum(n for _, n in counts.values())
    found = []
    for client in tested:
        k, n = counts[client]
        against_calibration = rate_test(k, n, k_calibration, n_calibration, alpha=level)
        k_others, n_others = k_all - k, n_all - n
        against_others = (
            rate_test(k, n, k_others, n_others, alpha=level) if n_others >= min_rows else None
        )
        found.append(ClientEvasion(
            client_id=client,
            n_rows=n,
            n_flagged=k,
            rate=k / n,
            calibrated_rate=against_calibration.expected_rate,
            others_rate=None if against_others is None else against_others.expected_rate,
            p_calibration=against_calibration.p_value,
            p_others=None if against_others is None else against_others.p_value,
            level=level,
            suspect=against_calibration.p_value < level
            and (against_others is None or against_others.p_value < level),
        ))
    return sorted(found, key=lambda c: (-c.rate, str(c.client_id)))
