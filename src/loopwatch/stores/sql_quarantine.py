"""The quarantine of training rows in SQL (migration 6): rows set aside, and their releases."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from loopwatch.errors import InvalidInput, NotFound, echo
from loopwatch.poisoning.records import QuarantineEntry, entry_id
from loopwatch.records.feedback import key_text, utc_moment
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.stores.base import from_micros, to_micros
from loopwatch.stores.sql import SqlStoreBase

_COLUMNS = (
    "model_name, request_id, row_index, label_revision, reasons, source, quarantined_at, released_at, released_by"
)
_ORDER = "ORDER BY quarantined_at, request_id, row_index"
#: Rows per statement when reading a set of keys (well under both databases' parameter limits).
_CHUNK = 400
_NEW_LABEL = "excluded.label_revision <> quarantine.label_revision"

# A row screened again with the same label keeps its first time and its release
# (a release is a person's decision about that label); a corrected label is a new
# row to judge, so it starts over, unreleased.
_UPSERT = (
    f"INSERT INTO quarantine ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL) "
    "ON CONFLICT (model_name, request_id, row_index) DO UPDATE SET "
    "reasons = excluded.reasons, source = excluded.source, "
    f"quarantined_at = CASE WHEN {_NEW_LABEL} THEN excluded.quarantined_at ELSE quarantine.quarantined_at END, "
    f"released_at = CASE WHEN {_NEW_LABEL} THEN NULL ELSE quarantine.released_at END, "
    f"released_by = CASE WHEN {_NEW_LABEL} THEN NULL ELSE quarantine.released_by END, "
    "label_revision = excluded.label_revision"
)


class SqlQuarantineMixin(SqlStoreBase):
    def quarantine_rows(self, entries: Sequence[QuarantineEntry]) -> int:
        """Store quarantined rows in one transaction; return how many were written.

        A row already quarantined for the same label revision keeps its time
        and its release and takes the new reasons; a new revision replaces it.
        ``released_at`` and ``released_by`` of the entries are ignored: only
        :meth:`release_quarantine` releases.
        """
        rows = [
            (e.model_name, e.request_id, e.row_index, e.label_revision, dumps(list(e.reasons)).decode(), e.source,
             to_micros(e.quarantined_at))
            for e in entries
        ]
        if not rows:
            return 0
        with self._transaction() as cur:
            cur.executemany(self._sql(_UPSERT), rows)
        return len(rows)

    def list_quarantine(
        self,
        model_name: str,
        *,
        released: bool | None = None,
        limit: int | None = 1000,
        offset: int = 0,
    ) -> list[QuarantineEntry]:
        """A model's quarantined rows, oldest first; ``released`` filters (``None``: both)."""
        key_text(model_name, "model")
        _count_argument(offset, "offset", allow_none=False)
        _count_argument(limit, "limit", allow_none=True)
        where = ["model_name = ?"]
        if released is not None:
            where.append("released_at IS NOT NULL" if released else "released_at IS NULL")
        page = "" if limit is None else f" LIMIT {int(limit)} OFFSET {int(offset)}"
        if limit is None and offset:
            page = f" LIMIT {2**62} OFFSET {int(offset)}"
        found = self._fetchall(
            f"SELECT {_COLUMNS} FROM quarantine WHERE {' AND '.join(where)} {_ORDER}{page}", (model_name,)
        )
        return [_entry(row) for row in found]

    def count_quarantine(self, model_name: str) -> dict[str, int]:
        """How many of a model's rows are quarantined and how many of them were released."""
        key_text(model_name, "model")
        found = self._fetchall(
            "SELECT COUNT(*), COUNT(released_at) FROM quarantine WHERE model_name = ?", (model_name,)
        )
        total, released = (int(v or 0) for v in found[0])
        return {"quarantined": total - released, "released": released}

    def release_quarantine(
        self, model_name: str, rows: Sequence[tuple[str, int]], *, by: str | None, at: datetime
    ) -> list[QuarantineEntry]:
        """Release rows, all or none: an unknown row is a NotFound and nothing changes.

        A row released before keeps its first release. Returns the rows as stored.
        """
        key_text(model_name, "model")
        moment = to_micros(utc_moment(at, "at"))
        if by is not None:
            key_text(by, "released_by")
        wanted = list(dict.fromkeys((str(r), int(i)) for r, i in rows))
        if not wanted:
            return []
        with self._transaction() as cur:
            cur.executemany(
                self._sql(
                    "UPDATE quarantine SET released_at = ?, released_by = ? "
                    "WHERE model_name = ? AND request_id = ? AND row_index = ? AND released_at IS NULL"
                ),
                [(moment, by, model_name, r, i) for r, i in wanted],
            )
            stored: dict[tuple[str, int], QuarantineEntry] = {}
            for first in range(0, len(wanted), _CHUNK):
                chunk = wanted[first : first + _CHUNK]
                keys = " OR ".join(["(request_id = ? AND row_index = ?)"] * len(chunk))
                cur.execute(
                    self._sql(f"SELECT {_COLUMNS} FROM quarantine WHERE model_name = ? AND ({keys})"),
                    (model_name, *[v for pair in chunk for v in pair]),
                )
                for row in cur.fetchall():
                    entry = _entry(row)
                    stored[(entry.request_id, entry.row_index)] = entry
            missing = [entry_id(r, i) for r, i in wanted if (r, i) not in stored]
            if missing:
                raise NotFound(
                    f"{len(missing)} of the rows are not quarantined for model {echo(model_name)}: "
                    + ", ".join(missing[:10]),
                    detail={"missing": missing[:100]},
                )
        return [stored[key] for key in wanted]


def _count_argument(value: Any, name: str, *, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**62:
        raise InvalidInput(f"{name} must be a non-negative integer")


def _entry(row: tuple[Any, ...]) -> QuarantineEntry:
    model, request_id, row_index, revision, reasons, source, at, released_at, released_by = row
    return QuarantineEntry(
        model_name=model, request_id=request_id, row_index=int(row_index), label_revision=int(revision),
        reasons=tuple(loads(reasons)), source=source, quarantined_at=from_micros(int(at)),
        released_at=None if released_at is None else from_micros(int(released_at)), released_by=released_by,
    )
