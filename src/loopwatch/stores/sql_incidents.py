"""Monitoring state in SQL: incidents, claims, monitoring configurations, rebaselines."""

from __future__ import annotations

import hashlib
import math
from datetime import datetime
from typing import Any, Sequence

from loopwatch.errors import IntegrityError, InvalidInput, NotFound, StoreError, echo
from loopwatch.records import ConfigVersion, IncidentRecord, Rebaseline
from loopwatch.records.feedback import key_text, utc_moment
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.stores.base import from_micros, to_micros
from loopwatch.stores.sql import SqlStoreBase

_INCIDENT_COLUMNS = (
    "incident_id, model_name, kind, loop, status, first_seen, last_seen, detected_at, summary, "
    "evidence, action, acknowledged_at, acknowledged_by, note"
)
_REBASELINE_COLUMNS = "model_name, model_version, number, since, until, profile_sha256, created_at, reason"
#: Attempts at taking the next number when another writer takes it first.
_NUMBER_ATTEMPTS = 5


class SqlIncidentsMixin(SqlStoreBase):
    def _is_unique_violation(self, exc: BaseException) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    # --- incidents ------------------------------------------------------------------
    def upsert_incident(self, incident: IncidentRecord) -> IncidentRecord:
        """Insert, or update what a new run can change; return the stored incident.

        On an existing id only ``last_seen`` (never moved back), ``evidence``,
        ``summary``, ``loop`` and ``action`` change, and the status only moves
        forward (open, acknowledged, resolved): an acknowledged incident is never
        un-acknowledged, a resolved one never reopened.
        """
        i = incident
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    f"INSERT INTO incidents ({_INCIDENT_COLUMNS}) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (incident_id) DO UPDATE SET "
                    "last_seen = CASE WHEN excluded.last_seen > incidents.last_seen "
                    "THEN excluded.last_seen ELSE incidents.last_seen END, "
                    "evidence = excluded.evidence, summary = excluded.summary, "
                    "loop = excluded.loop, action = excluded.action, "
                    "status = CASE "
                    "WHEN 'resolved' IN (incidents.status, excluded.status) THEN 'resolved' "
                    "WHEN 'acknowledged' IN (incidents.status, excluded.status) THEN 'acknowledged' "
                    "ELSE 'open' END"
                ),
                (
                    i.incident_id,
                    i.model_name,
                    i.kind,
                    i.loop,
                    i.status,
                    to_micros(i.first_seen),
                    to_micros(i.last_seen),
                    to_micros(i.detected_at),
                    i.summary,
                    dumps(i.evidence).decode(),
                    i.action,
                    None if i.acknowledged_at is None else to_micros(i.acknowledged_at),
                    i.acknowledged_by,
                    i.note,
                ),
            )
            cur.execute(
                self._sql(f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE incident_id = ?"),
                (i.incident_id,),
            )
            return _incident_from_row(cur.fetchone())

    def list_incidents(
        self, model_name: str | None = None, *, status: str | None = None
    ) -> list[IncidentRecord]:
        """Incidents by first_seen, then id; filtered by model and status."""
        where: list[str] = []
        params: list[Any] = []
        for column, value in (("model_name", model_name), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        found = self._fetchall(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents {clause} ORDER BY first_seen, incident_id",
            params,
        )
        return [_incident_from_row(r) for r in found]

    def get_incident(self, incident_id: str) -> IncidentRecord:
        found = self._fetchall(
            f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE incident_id = ?", (incident_id,)
        )
        if not found:
            raise NotFound(f"no incident {echo(incident_id)}")
        return _incident_from_row(found[0])

    def acknowledge_incident(
        self, incident_id: str, *, by: str | None, at: datetime, note: str | None = None
    ) -> IncidentRecord:
        """Mark an incident acknowledged (a resolved one stays resolved); ``note=None`` keeps the note."""
        at = utc_moment(at, "at")
        for name, value in (("by", by), ("note", note)):
            if value is not None and (not isinstance(value, str) or "\x00" in value):
                raise InvalidInput(f"{name} must be text without NUL characters")
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "UPDATE incidents SET status = CASE WHEN status = 'resolved' THEN 'resolved' "
                    "ELSE 'acknowledged' END, acknowledged_at = ?, acknowledged_by = ?, "
                    "note = COALESCE(?, note) WHERE incident_id = ?"
                ),
                (to_micros(at), by, note, incident_id),
            )
            if cur.rowcount == 0:
                raise NotFound(f"no incident {echo(incident_id)}")
            cur.execute(
                self._sql(f"SELECT {_INCIDENT_COLUMNS} FROM incidents WHERE incident_id = ?"),
                (incident_id,),
            )
            return _incident_from_row(cur.fetchone())

    # --- claims ---------------------------------------------------------------------
    def claim(self, key: str, *, now: datetime, cooldown_seconds: float) -> bool:
        """True for exactly one caller per key and cooldown period, across processes.

        One statement decides: the first claim inserts the key; a later one
        moves its time only when the cooldown has passed. Whoever's statement
        changed the row gets it back (RETURNING) and wins.
        """
        key_text(key, "claim key", max_length=500)
        if isinstance(cooldown_seconds, bool) or not isinstance(cooldown_seconds, (int, float)):
            raise InvalidInput("cooldown_seconds must be a number")
        if not math.isfinite(cooldown_seconds) or cooldown_seconds < 0:
            raise InvalidInput("cooldown_seconds must be a finite number of at least 0")
        cooldown = int(round(cooldown_seconds * 1_000_000))
        with self._transaction() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO claims (claim_key, claimed_at) VALUES (?, ?) "
                    "ON CONFLICT (claim_key) DO UPDATE SET claimed_at = excluded.claimed_at "
                    f"WHERE excluded.claimed_at >= claims.claimed_at + {cooldown} "
                    "RETURNING claim_key"
                ),
                (key, to_micros(now)),
            )
            return cur.fetchone() is not None

    # --- monitoring configuration ---------------------------------------------------
    def put_monitor_config(
        self, model_name: str, config: dict[str, Any], *, at: datetime, author: str | None = None
    ) -> ConfigVersion:
        """Store ``config`` as the model's next version; the same config as the latest is not a new one."""
        key_text(model_name, "model")
        if not isinstance(config, dict):
            raise InvalidInput("a monitoring configuration must be a JSON object")
        if author is not None:
            key_text(author, "author")
        text = dumps(config).decode()  # JSON text escapes NUL, so any string is safe to store
        created = to_micros(utc_moment(at, "at"))
        for attempt in range(_NUMBER_ATTEMPTS):
            try:
                with self._transaction() as cur:
                    self._serialize(cur, f"monitor_configs:{model_name}")
                    cur.execute(
                        self._sql(
                            "SELECT version, config, created_at, author FROM monitor_configs "
                            "WHERE model_name = ? ORDER BY version DESC LIMIT 1"
                        ),
                        (model_name,),
                    )
                    latest = cur.fetchone()
                    if latest is not None and loads(latest[1]) == loads(text):
                        return _config(model_name, latest)
                    version = 1 if latest is None else int(latest[0]) + 1
                    cur.execute(
                        self._sql(
                            "INSERT INTO monitor_configs (model_name, version, config, created_at, "
                            "author) VALUES (?, ?, ?, ?, ?)"
                        ),
                        (model_name, version, text, created, author),
                    )
                return _config(model_name, (version, text, created, author))
            except Exception as exc:
                if self._is_unique_violation(exc) and attempt < _NUMBER_ATTEMPTS - 1:
                    continue  # another writer took this number: read again
                raise
        raise StoreError("could not store the monitoring configuration")  # pragma: no cover

    def get_monitor_config(self, model_name: str, version: int | None = None) -> ConfigVersion | None:
        """A version of the model's configuration; the latest when ``version`` is None."""
        if version is None:
            found = self._fetchall(
                "SELECT version, config, created_at, author FROM monitor_configs "
                "WHERE model_name = ? ORDER BY version DESC LIMIT 1",
                (model_name,),
            )
        else:
            found = self._fetchall(
                "SELECT version, config, created_at, author FROM monitor_configs "
                "WHERE model_name = ? AND version = ?",
                (model_name, int(version)),
            )
        return _config(model_name, found[0]) if found else None

    def list_monitor_configs(self, model_name: str) -> list[ConfigVersion]:
        found = self._fetchall(
            "SELECT version, config, created_at, author FROM monitor_configs "
            "WHERE model_name = ? ORDER BY version",
            (model_name,),
        )
        return [_config(model_name, r) for r in found]

    # --- rebaselines ----------------------------------------------------------------
    def add_rebaseline(
        self,
        *,
        model_name: str,
        model_version: int,
        since: datetime,
        until: datetime,
        profile: bytes,
        profile_sha256: str,
        at: datetime,
        reason: str,
    ) -> Rebaseline:
        """Store a rebuilt reference profile as the version's next rebaseline."""
        if hashlib.sha256(profile).hexdigest() != profile_sha256:
            raise IntegrityError("the rebaseline profile does not match its SHA-256")
        if not to_micros(since) < to_micros(until):
            raise InvalidInput("a rebaseline period needs since before until")
        if not isinstance(reason, str) or "\x00" in reason:
            raise InvalidInput("reason must be text without NUL characters")
        created = to_micros(utc_moment(at, "at"))
        for attempt in range(_NUMBER_ATTEMPTS):
            try:
                with self._transaction() as cur:
                    self._serialize(cur, f"rebaselines:{model_name}:{model_version}")
                    cur.execute(
                        self._sql("SELECT 1 FROM model_versions WHERE name = ? AND version = ?"),
                        (model_name, model_version),
                    )
                    if cur.fetchone() is None:
                        raise NotFound(f"model {echo(model_name)} has no version {model_version}")
                    cur.execute(
                        self._sql(
                            "INSERT INTO artifacts (sha256, kind, size, content, created_at) "
                            "VALUES (?, 'profile', ?, ?, ?) ON CONFLICT (sha256) DO NOTHING"
                        ),
                        (profile_sha256, len(profile), profile, created),
                    )
                    cur.execute(
                        self._sql(
                            "SELECT COALESCE(MAX(number), 0) + 1 FROM rebaselines "
                            "WHERE model_name = ? AND model_version = ?"
                        ),
                        (model_name, model_version),
                    )
                    number = int(cur.fetchone()[0])
                    row = (
                        model_name, model_version, number, to_micros(since), to_micros(until),
                        profile_sha256, created, reason,
                    )
                    cur.execute(
                        self._sql(
                            f"INSERT INTO rebaselines ({_REBASELINE_COLUMNS}) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                        ),
                        row,
                    )
                return _rebaseline_from_row(row)
            except Exception as exc:
                if self._is_unique_violation(exc) and attempt < _NUMBER_ATTEMPTS - 1:
                    continue
                raise
        raise StoreError("could not store the rebaseline")  # pragma: no cover

    def latest_rebaseline(self, model_name: str, model_version: int) -> tuple[Rebaseline, bytes] | None:
        """The version's newest rebaseline with its profile bytes, or None."""
        columns = ", ".join(f"r.{c.strip()}" for c in _REBASELINE_COLUMNS.split(","))
        found = self._fetchall(
            f"SELECT {columns}, a.content FROM rebaselines r "
            "JOIN artifacts a ON a.sha256 = r.profile_sha256 "
            "WHERE r.model_name = ? AND r.model_version = ? ORDER BY r.number DESC LIMIT 1",
            (model_name, model_version),
        )
        if not found:
            return None
        return _rebaseline_from_row(found[0]), bytes(found[0][8])

    def list_rebaselines(self, model_name: str) -> list[Rebaseline]:
        found = self._fetchall(
            f"SELECT {_REBASELINE_COLUMNS} FROM rebaselines WHERE model_name = ? "
            "ORDER BY model_version, number",
            (model_name,),
        )
        return [_rebaseline_from_row(r) for r in found]


def _incident_from_row(r: Sequence[Any]) -> IncidentRecord:
    return IncidentRecord(
        incident_id=r[0],
        model_name=r[1],
        kind=r[2],
        loop=r[3],
        status=r[4],
        first_seen=from_micros(int(r[5])),
        last_seen=from_micros(int(r[6])),
        detected_at=from_micros(int(r[7])),
        summary=r[8],
        evidence=loads(r[9]),
        action=r[10],
        acknowledged_at=None if r[11] is None else from_micros(int(r[11])),
        acknowledged_by=r[12],
        note=r[13],
    )


def _config(model_name: str, r: Sequence[Any]) -> ConfigVersion:
    return ConfigVersion(
        model_name=model_name,
        version=int(r[0]),
        config=loads(r[1]),
        created_at=from_micros(int(r[2])),
        author=r[3],
    )


def _rebaseline_from_row(r: Sequence[Any]) -> Rebaseline:
    return Rebaseline(
        model_name=r[0],
        model_version=int(r[1]),
        number=int(r[2]),
        since=from_micros(int(r[3])),
        until=from_micros(int(r[4])),
        profile_sha256=r[5],
        created_at=from_micros(int(r[6])),
        reason=r[7],
    )
