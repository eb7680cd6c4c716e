"""Which clients send inputs that the evasion score flags more often than it should?

Every logged prediction carries the adversarial detector's flag (its score above
the threshold for the model's ``adversarial_fpr``, calibrated on clean reference
rows). Over a window, a client's flagged share is tested twice, one-sided, with
:func:`loopwatch.stats.rates.rate_test`: against the calibration rows' share at
that threshold (is it above the stated false-positive rate?) and against the
other clients' share in the same window (does it stand out, or is everyone's
traffic moving?) and, once the client has one, against its own history (its share
in earlier ordinary windows: a client whose customers differ from the training
population is flagged more often than the calibration rows every day, and that is
its normal, not an attack). A client is a suspect when every test it has rejects
at ``alpha`` divided by the number of clients tested (Bonferroni), so a window
with many clients raises no more false suspects than a window with one.

A window whose inputs drifted raises every client's scores: the monitor calls
this only where the inputs held. A client alone in its window has no others to
stand out from; a new client has no history.

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
    #: The client's own flagged share in its earlier ordinary windows (None without enough history).
    history_rate: float | None
    p_history: float | None
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
    history: Mapping[str | None, tuple[int, int]] | None = None,
    alpha: float = 0.001,
    min_rows: int = 30,
    min_history: int = 100,
) -> list[ClientEvasion]:
    """:func:`evasion_by_client_counts` from each client's flags, one per scored row."""
    return evasion_by_client_counts(
        {client: (sum(bool(f) for f in values), len(values)) for client, values in flags.items()},
        k_calibration=k_calibration, n_calibration=n_calibration, history=history, alpha=alpha,
        min_rows=min_rows, min_history=min_history)


def evasion_by_client_counts(
    counts: Mapping[str | None, tuple[int, int]],
    *,
    k_calibration: int,
    n_calibration: int,
    history: Mapping[str | None, tuple[int, int]] | None = None,
    alpha: float = 0.001,
    min_rows: int = 30,
    min_history: int = 100,
) -> list[ClientEvasion]:
    """Each client with at least ``min_rows`` scored rows, most flagged share first
    (``counts``: each client's flagged and scored rows).

    ``history`` maps a client to its flagged and scored rows in earlier ordinary
    windows; with at least ``min_history`` of them, the client is also tested
    against its own past.
    """
    if not 0 < alpha < 1:
        raise InvalidInput("alpha must lie in (0, 1)")
    for name, value in (("min_rows", min_rows), ("min_history", min_history)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InvalidInput(f"{name} must be a positive integer")
    if any(not 0 <= k <= n for k, n in counts.values()):
        raise InvalidInput("a client's flagged rows are among its scored rows")
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
        k_past, n_past = (history or {}).get(client, (0, 0))
        against_history = rate_test(k, n, k_past, n_past, alpha=level) if n_past >= min_history else None
        tests = [t for t in (against_calibration, against_others, against_history) if t is not None]
        found.append(ClientEvasion(
            client_id=client,
            n_rows=n,
            n_flagged=k,
            rate=k / n,
            calibrated_rate=against_calibration.expected_rate,
            others_rate=None if against_others is None else against_others.expected_rate,
            p_calibration=against_calibration.p_value,
            p_others=None if against_others is None else against_others.p_value,
            history_rate=None if against_history is None else against_history.expected_rate,
            p_history=None if against_history is None else against_history.p_value,
            level=level,
            suspect=all(t.p_value < level for t in tests),
        ))
    return sorted(found, key=lambda c: (-c.rate, str(c.client_id)))
