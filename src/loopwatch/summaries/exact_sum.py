"""An exactly summed total of floats: the same value in any order and grouping.

Every finite double is ``M * 2**E`` with an integer ``|M| < 2**53``, so any sum
of doubles is a dyadic rational ``m * 2**e``. :class:`ExactSum` keeps that
rational exactly (Python integers, normalised so ``m`` is odd), which makes
``merge`` plain integer addition: associative and commutative with no rounding
at all, so a window rebuilt from the log, in whatever batches, gives the
identical total. :attr:`ExactSum.value` is the correctly rounded double.

Building is vectorised: ``np.frexp`` gives each value's integer mantissa and
exponent; mantissas are split into limbs small enough that ``int64`` sums of
up to :data:`CHUNK_ROWS` values cannot overflow; limbs are summed per exponent
(a stable sort of the small-integer exponents, then ``np.add.reduceat``), and
only the few per-exponent totals are combined as Python integers.
:meth:`ExactSum.of_squares` does the same for ``x * x`` computed without
rounding (products of limbs), so a variance from exact sums is exact too.

Non-finite input (NaN, +-inf) is refused with :class:`~loopwatch.errors.InvalidInput`:
it has no exact value, and ``inf + -inf`` has none at all, so a total that
accepted it could not merge associatively. Callers that meet missing or
non-finite values count them beside the sum (the numeric part does).

>>> s = ExactSum.of([1e16, 1.0, -1e16])
>>> s.value, sum([1e16, 1.0, -1e16])
(1.0, 0.0)
>>> ExactSum.of([0.1, 0.2]).merge(ExactSum.of([0.3])).value == math.fsum([0.1, 0.2, 0.3])
True
>>> ExactSum.from_text(ExactSum.of([0.5, 0.25]).to_text())
ExactSum(mantissa=3, exponent=-2)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from loopwatch.errors import InvalidInput, echo

K = TypeVar("K")

#: Rows summed per int64 pass: limbs are below 2**38 (squares) or 2**27 (sums),
#: so 2**24 of them sum below 2**62.
CHUNK_ROWS = 1 << 24
_LIMB = 18  # bits per limb of a mantissa when squaring
_HALF = 27  # bits of the low half of a mantissa when summing
_EXPONENT_SPAN = 4096  # more than the range of a double's exponent (-1,127 to 971 here)


def _normalised(mantissa: int, exponent: int) -> tuple[int, int]:
    if mantissa == 0:
        return 0, 0
    shift = (mantissa & -mantissa).bit_length() - 1  # trailing zero bits
    return mantissa >> shift, exponent + shift


def _grouped_total(exponents: npt.NDArray[np.int64],
                   limbs: tuple[tuple[npt.NDArray[np.int64], int], ...]) -> tuple[int, int]:
    """``sum_i sum_(t, s) t[i] * 2**(exponents[i] + s)`` exactly, as (mantissa, exponent).

    Rows are grouped by exponent once (exponents lie within +-2,300: as int16 the
    stable sort is a radix sort); each limb array is summed per group in int64."""
    if exponents.size == 0:
        return 0, 0
    order = np.argsort(exponents.astype(np.int16), kind="stable")
    exps = exponents[order]
    starts = np.flatnonzero(np.concatenate(([True], exps[1:] != exps[:-1])))
    group_exps = exps[starts].tolist()
    base = int(group_exps[0])
    total = 0
    for terms, shift in limbs:
        sums = np.add.reduceat(terms[order], starts).tolist()
        for s, e in zip(sums, group_exps):
            if s:
                total += int(s) << (int(e) + shift - base)
    return _normalised(total, base)


def _finite(values: npt.ArrayLike) -> npt.NDArray[np.float64]:
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise InvalidInput("an exact sum needs numbers") from exc
    if not np.isfinite(arr).all():
        bad = arr[~np.isfinite(arr)][0]
        raise InvalidInput(f"an exact sum needs finite numbers, got {echo(float(bad))}")
    return arr


def _mantissas(arr: npt.NDArray[np.float64]) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    frac, exp = np.frexp(arr)
    # frac has at most 53 significant bits, so frac * 2**53 is an exact integer
    return np.ldexp(frac, 53).astype(np.int64), exp.astype(np.int64) - 53


@dataclass(frozen=True)
class ExactSum:
    """The exact value ``mantissa * 2**exponent`` of a sum of doubles (``mantissa`` odd, or 0 and 0)."""

    mantissa: int = 0
    exponent: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.mantissa, bool) or not isinstance(self.mantissa, int) or \
                isinstance(self.exponent, bool) or not isinstance(self.exponent, int):
            raise InvalidInput("an exact sum's mantissa and exponent are integers")
        m, e = _normalised(self.mantissa, self.exponent)
        object.__setattr__(self, "mantissa", m)
        object.__setattr__(self, "exponent", e)

    @classmethod
    def of(cls, values: npt.ArrayLike) -> ExactSum:
        """The exact sum of finite values.

        >>> ExactSum.of([]).value, ExactSum.of([-0.0]).value
        (0.0, 0.0)
        """
        arr = _finite(values)
        m, e = 0, 0
        for start in range(0, arr.size, CHUNK_ROWS):
            mant, exp = _mantissas(arr[start:start + CHUNK_ROWS])
            high = mant >> _HALF  # floor division keeps mant == high * 2**27 + low, 0 <= low < 2**27
            low = mant - (high << _HALF)
            part = _grouped_total(exp, ((high, _HALF), (low, 0)))
            m, e = _add(m, e, *part)
        return cls(m, e)

    @classmethod
    def of_groups(cls, values: npt.ArrayLike, groups: npt.ArrayLike, n_groups: int) -> list[ExactSum]:
        """The exact sum of the finite values of each group (``groups``: each value's group in
        ``[0, n_groups)``), in one pass: the limbs are summed per (group, exponent).

        >>> [s.value for s in ExactSum.of_groups([1e16, 1.0, 2.0, -1e16], [0, 0, 1, 0], 3)]
        [1.0, 2.0, 0.0]
        """
        arr = _finite(values)
        group = np.asarray(groups, dtype=np.int64).ravel()
        if group.shape != arr.shape:
            raise InvalidInput("an exact sum per group needs one group per value")
        if group.size and (group.min() < 0 or group.max() >= n_groups):
            raise InvalidInput(f"a group is outside [0, {n_groups})")
        totals = [(0, 0)] * n_groups
        for start in range(0, arr.size, CHUNK_ROWS):
            mant, exp = _mantissas(arr[start:start + CHUNK_ROWS])
            high = mant >> _HALF
            low = mant - (high << _HALF)
            # exponents lie within +-1,200: a key of group and exponent sorts both at once
            key = group[start:start + CHUNK_ROWS] * _EXPONENT_SPAN + (exp + _EXPONENT_SPAN // 2)
            order = np.argsort(key, kind="stable")
            key = key[order]
            starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
            for k, h, lo in zip(key[starts].tolist(), np.add.reduceat(high[order], starts).tolist(),
                                np.add.reduceat(low[order], starts).tolist()):
                g, e = divmod(int(k), _EXPONENT_SPAN)
                totals[g] = _add(*totals[g], (int(h) << _HALF) + int(lo), e - _EXPONENT_SPAN // 2)
        return [cls(m, e) for m, e in totals]

    @classmethod
    def of_squares(cls, values: npt.ArrayLike) -> ExactSum:
        """The exact sum of ``x * x`` (no rounding, no overflow, no underflow).

        >>> ExactSum.of_squares([1e200, 3.0]).as_fraction() == Fraction(1e200) ** 2 + 9
        True
        """
        arr = _finite(values)
        m, e = 0, 0
        for start in range(0, arr.size, CHUNK_ROWS):
            mant, exp = _mantissas(np.abs(arr[start:start + CHUNK_ROWS]))
            mask = (1 << _LIMB) - 1
            a, b, c = mant >> (2 * _LIMB), (mant >> _LIMB) & mask, mant & mask
            # (a 2^36 + b 2^18 + c)^2, every product below 2^38
            limbs = ((a * a, 4 * _LIMB), (2 * a * b, 3 * _LIMB), (2 * a * c + b * b, 2 * _LIMB),
                     (2 * b * c, _LIMB), (c * c, 0))
            part = _grouped_total(2 * exp, limbs)
            m, e = _add(m, e, *part)
        return cls(m, e)

    def merge(self, other: ExactSum, /) -> ExactSum:
        """The exact sum of both totals."""
        if not isinstance(other, ExactSum):
            raise InvalidInput("can only merge an ExactSum with another")
        return ExactSum(*_add(self.mantissa, self.exponent, other.mantissa, other.exponent))

    def as_fraction(self) -> Fraction:
        if self.exponent >= 0:
            return Fraction(self.mantissa << self.exponent)
        return Fraction(self.mantissa, 1 << -self.exponent)

    @property
    def value(self) -> float:
        """The correctly rounded double (``+-inf`` when the exact total is beyond the float range).

        >>> ExactSum.of([1.7e308, 1.7e308]).value
        inf
        """
        try:
            return float(self.as_fraction())  # int / int division in Python rounds correctly
        except OverflowError:
            return math.inf if self.mantissa > 0 else -math.inf

    def to_text(self) -> str:
        """``"<hex mantissa>p<exponent>"``: exact, short, JSON-safe.

        >>> ExactSum.of([-3.0]).to_text(), ExactSum().to_text()
        ('-0x3p0', '0x0p0')
        """
        return f"{self.mantissa:#x}p{self.exponent}"

    @classmethod
    def from_text(cls, text: str) -> ExactSum:
        if not isinstance(text, str) or text.count("p") != 1 or len(text) > 10_000:
            raise InvalidInput(f"not an exact sum: {echo(text)}")
        head, tail = text.split("p")
        try:
            return cls(int(head, 16), int(tail))
        except ValueError as exc:
            raise InvalidInput(f"not an exact sum: {echo(text)}") from exc


def _add(m1: int, e1: int, m2: int, e2: int) -> tuple[int, int]:
    if m1 == 0:
        return m2, e2
    if m2 == 0:
        return m1, e1
    base = min(e1, e2)
    return _normalised((m1 << (e1 - base)) + (m2 << (e2 - base)), base)


def add_sums(a: Mapping[K, ExactSum], b: Mapping[K, ExactSum]) -> dict[K, ExactSum]:
    """Two parts' exact sums per key, added, in key order.

    >>> add_sums({1: ExactSum.of([0.5])}, {0: ExactSum.of([1.0]), 1: ExactSum.of([0.25])})
    {0: ExactSum(mantissa=1, exponent=0), 1: ExactSum(mantissa=3, exponent=-2)}
    """
    out = dict(a)
    for key, value in b.items():
        out[key] = out[key].merge(value) if key in out else value
    return {key: out[key] for key in sorted(out)}  # type: ignore[type-var]
