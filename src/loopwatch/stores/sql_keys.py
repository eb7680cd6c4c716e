"""API keys and their usage in SQL (migration 5): the keys, and the counts behind the limits."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from loopwatch.auth.keys import ApiKey, check_key_id, check_scopes
from loopwatch.errors import Conflict, InvalidInput, NotFound, StoreError, echo
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.stores.base import from_micros, to_micros
from loopwatch.stores.sql import SqlStoreBase

_KEY_COLUMNS = (
    "key_id, name, token_sha256, scopes, created_at, created_by, expires_at, revoked_at, "
    "rate_per_second, daily_budget"
)
USAGE_KINDS = ("second", "day")
KEY_GENERATION_SQL = "SELECT generation FROM key_generation WHERE id = 1"

# One statement grants up to ``want`` more requests in a window without the window's
# total passing ``limit``: a new window starts from zero, an older one (a worker whose
# clock is behind) grants nothing. ``last_grant`` is computed from the row as it was
# (SQL evaluates every SET expression on the old row) and returned.
_SAME = "key_usage.window_start = excluded.window_start"
_GRANT = (
    f"CASE WHEN NOT ({_SAME}) THEN excluded.granted "
    "WHEN key_usage.granted >= ? THEN 0 "
    "WHEN key_usage.granted + excluded.granted > ? THEN ? - key_usage.granted "
    "ELSE excluded.granted END"
)
_CLAIM = (
    "INSERT INTO key_usage (key_id, kind, window_start, granted, last_grant) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key_id, kind) DO UPDATE SET "
    f"last_grant = {_GRANT}, "
    f"granted = CASE WHEN {_SAME} THEN key_usage.granted ELSE 0 END + {_GRANT}, "
    "window_start = excluded.window_start "
    "WHERE key_usage.window_start <= excluded.window_start "
    "RETURNING last_grant"
)


class SqlKeysMixin(SqlStoreBase):
    def _is_unique_violation(self, exc: BaseException) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def create_api_key(self, key: ApiKey) -> ApiKey:
        """Store a new key (its hash, never its token); a taken key id is a conflict."""
        check_key_id(key.key_id)
        check_scopes(key.scopes)
        if len(key.token_sha256) != 64:
            raise InvalidInput("token_sha256 must be a hex SHA-256")
        try:
            with self._transaction() as cur:
                cur.execute(
                    self._sql(f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    (
                        key.key_id,
                        key.name,
                        key.token_sha256,
                        dumps(list(key.scopes)).decode(),
                        to_micros(key.created_at),
                        key.created_by,
                        _micros(key.expires_at),
                        _micros(key.revoked_at),
                        key.rate_per_second,
                        key.daily_budget,
                    ),
                )
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict(f"key id {echo(key.key_id)} is taken") from exc
            raise
        return key

    def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = self._fetchall(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (check_key_id(key_id),))
        return _key_from_row(rows[0]) if rows else None

    def list_api_keys(self) -> list[ApiKey]:
        rows = self._fetchall(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id")
        return [_key_from_row(row) for row in rows]

    def revoke_api_key(self, key_id: str, *, at: datetime) -> ApiKey:
        """Revoke a key (the first revocation's time stays); the record is kept for the audit trail.

        The same transaction moves the key generation on (:meth:`key_generation`): once it has
        committed, every worker that compares the generation at the start of a request sees
        that its cached keys are stale, so the revocation holds for every later request.
        """
        check_key_id(key_id)
        with self._transaction() as cur:
            cur.execute(
                self._sql("UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL"),
                (to_micros(at), key_id),
            )
            if cur.rowcount:
                cur.execute("UPDATE key_generation SET generation = generation + 1 WHERE id = 1")
            cur.execute(self._sql(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = ?"), (key_id,))
            row = cur.fetchone()
        if row is None:
            raise NotFound(f"no API key with id {echo(key_id)}")
        return _key_from_row(row)

    def key_generation(self) -> int:
        """How many revocations the store has seen: one single-row read, made at the start of
        every authenticated request, as one statement outside any transaction (a few
        microseconds on SQLite, one round trip on PostgreSQL)."""
        try:
            rows = self._read_outside_transaction(KEY_GENERATION_SQL)
        except Exception as exc:
            self._drop_connection()
            raise StoreError(f"cannot check API keys: the database cannot be read ({exc})") from exc
        return int(rows[0][0]) if rows else 0

    def _read_outside_transaction(self, statement: str) -> list[tuple[Any, ...]]:
        """One read statement as its own transaction; dialects make it one round trip."""
        return self._fetchall(statement)

    def claim_key_usage(self, key_id: str, *, kind: str, window: int, want: int, limit: int) -> int:
        """Grant up to ``want`` requests of ``key_id`` in ``window`` (a second or a day number)
        without the window's total passing ``limit``; return how many were granted.

        One atomic statement decides, so workers in several processes (or on several
        machines sharing PostgreSQL) never grant more than ``limit`` together.
        """
        check_key_id(key_id)
        if kind not in USAGE_KINDS:
            raise InvalidInput(f"usage kind must be one of {USAGE_KINDS}")
        for value, what in ((window, "window"), (want, "want"), (limit, "limit")):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"{what} must be a whole number of at least 0")
        first = min(want, limit)
        with self._transaction() as cur:
            cur.execute(self._sql(_CLAIM), (key_id, kind, window, first, first, *(limit,) * 6))
            row = cur.fetchone()
        return 0 if row is None else int(row[0])

    def key_usage(self, key_id: str, *, kind: str, window: int) -> int:
        """Requests granted to ``key_id`` in ``window`` (0 when the stored window is another)."""
        rows = self._fetchall(
            "SELECT granted FROM key_usage WHERE key_id = ? AND kind = ? AND window_start = ?",
            (check_key_id(key_id), kind, window),
        )
        return int(rows[0][0]) if rows else 0


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _moment(value: Any) -> datetime | None:
    return None if value is None else from_micros(int(value))


def _key_from_row(row: Any) -> ApiKey:
    return ApiKey(
        key_id=row[0],
        name=row[1],
        token_sha256=row[2],
        scopes=tuple(loads(row[3])),
        created_at=from_micros(int(row[4])),
        created_by=row[5],
        expires_at=_moment(row[6]),
        revoked_at=_moment(row[7]),
        rate_per_second=None if row[8] is None else int(row[8]),
        daily_budget=None if row[9] is None else int(row[9]),
    )
