"""The model registry in SQL: versions, artifacts, aliases with history, settings."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Sequence

from loopwatch.errors import Conflict, InvalidInput, LoopwatchError, NotFound, StoreError, echo
from loopwatch.features.schema import FeatureSchema
from loopwatch.records import AliasChange, ModelInfo, ModelSettings, ModelVersion
from loopwatch.records.jsonutil import dumps, loads
from loopwatch.stores.base import from_micros, to_micros
from loopwatch.stores.migrations import MODEL_NAME_COLUMNS
from loopwatch.stores.sql import SqlStoreBase

_VERSION_COLUMNS = (
    "name, version, created_at, task, estimator, artifact_sha256, reference_sha256, "
    "feature_schema, metrics, data_summary, params, profile_sha256"
)


class SqlRegistryMixin(SqlStoreBase):
    def _is_unique_violation(self, exc: BaseException) -> bool:  # pragma: no cover - abstract
        raise NotImplementedError

    def create_model_version(
        self,
        *,
        name: str,
        created_at: datetime,
        task: str,
        estimator: str,
        artifact: bytes,
        artifact_sha256: str,
        reference: bytes,
        reference_sha256: str,
        schema: dict[str, Any],
        metrics: dict[str, Any],
        data_summary: dict[str, Any],
        params: dict[str, Any],
        profile: bytes | None = None,
        profile_sha256: str | None = None,
    ) -> int:
        """Store the artifacts and register the next version number under ``name``."""
        at = to_micros(created_at)
        for attempt in range(5):
            try:
                with self._transaction() as cur:
                    # DO UPDATE (a no-op) rather than DO NOTHING: it locks the model's
                    # row until commit, so concurrent registrations of one name take
                    # their numbers in turn instead of racing for the same MAX + 1.
                    cur.execute(
                        self._sql(
                            "INSERT INTO models (name, created_at) VALUES (?, ?) "
                            "ON CONFLICT (name) DO UPDATE SET created_at = models.created_at"
                        ),
                        (name, at),
                    )
                    blobs = [(artifact_sha256, "model", artifact), (reference_sha256, "reference", reference)]
                    if profile is not None and profile_sha256 is not None:
                        blobs.append((profile_sha256, "profile", profile))
                    for sha, kind, content in blobs:
                        cur.execute(
                            self._sql(
                                "INSERT INTO artifacts (sha256, kind, size, content, created_at) "
                                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING"
                            ),
                            (sha, kind, len(content), content, at),
                        )
                    cur.execute(
                        self._sql(
                            "SELECT COALESCE(MAX(version), 0) + 1 FROM model_versions WHERE name = ?"
                        ),
                        (name,),
                    )
                    version = int(cur.fetchone()[0])
                    cur.execute(
                        self._sql(
                            f"INSERT INTO model_versions ({_VERSION_COLUMNS}) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                        ),
                        (
                            name,
                            version,
                            at,
                            task,
                            estimator,
                            artifact_sha256,
                            reference_sha256,
                            dumps(schema).decode(),
                            dumps(metrics).decode(),
                            dumps(data_summary).decode(),
                            dumps(params).decode(),
                            profile_sha256 if profile is not None else None,
                        ),
                    )
                return version
            except Exception as exc:
                # two writers picked the same number: take the next one
                if self._is_unique_violation(exc) and attempt < 4:
                    continue
                raise StoreError(f"could not register a version of {echo(name)}: {exc}") from exc
        raise StoreError(f"could not register a version of {echo(name)}")  # pragma: no cover

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        found = self._fetchall(
            f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE name = ? AND version = ?",
            (name, version),
        )
        if not found:
            if not self.model_exists(name):
                raise NotFound(f"no model named {echo(name)}")
            raise NotFound(f"model {echo(name)} has no version {version}")
        return self._version_from_row(found[0], self.get_aliases(name))

    def list_versions(self, name: str) -> list[ModelVersion]:
        if not self.model_exists(name):
            raise NotFound(f"no model named {echo(name)}")
        aliases = self.get_aliases(name)
        found = self._fetchall(
            f"SELECT {_VERSION_COLUMNS} FROM model_versions WHERE name = ? ORDER BY version",
            (name,),
        )
        return [self._version_from_row(r, aliases) for r in found]

    def list_models(self) -> list[ModelInfo]:
        found = self._fetchall(
            "SELECT m.name, m.created_at, m.log_data, m.retention_days, "
            "(SELECT MAX(version) FROM model_versions v WHERE v.name = m.name), m.nullable "
            "FROM models m ORDER BY m.name"
        )
        aliases: dict[str, dict[str, int]] = {}
        for name, alias, version in self._fetchall("SELECT name, alias, version FROM aliases"):
            aliases.setdefault(name, {})[alias] = int(version)
        return [
            ModelInfo(
                name=r[0],
                created_at=from_micros(int(r[1])),
                settings=_settings(r[2], r[3], r[5]),
                aliases=aliases.get(r[0], {}),
                latest_version=None if r[4] is None else int(r[4]),
            )
            for r in found
        ]

    def get_artifact(self, sha256: str) -> bytes:
        found = self._fetchall("SELECT content FROM artifacts WHERE sha256 = ?", (sha256,))
        if not found:
            raise NotFound(f"no artifact with hash {sha256}")
        return bytes(found[0][0])

    def get_aliases(self, name: str) -> dict[str, int]:
        found = self._fetchall(
            "SELECT alias, version FROM aliases WHERE name = ? ORDER BY alias", (name,)
        )
        return {alias: int(version) for alias, version in found}

    def set_alias(
        self, name: str, alias: str, version: int | None, *, reason: str, at: datetime
    ) -> AliasChange:
        """Point ``alias`` at ``version`` (``None`` removes it), recording the change."""
        with self._transaction() as cur:
            if version is not None:
                cur.execute(
                    self._sql("SELECT 1 FROM model_versions WHERE name = ? AND version = ?"),
                    (name, version),
                )
                if cur.fetchone() is None:
                    raise NotFound(f"model {echo(name)} has no version {version}")
            cur.execute(
                self._sql("SELECT version FROM aliases WHERE name = ? AND alias = ?"),
                (name, alias),
            )
            row = cur.fetchone()
            previous = None if row is None else int(row[0])
            if version is None:
                if previous is None:
                    raise Conflict(f"model {echo(name)} has no {alias} alias to remove")
                cur.execute(
                    self._sql("DELETE FROM aliases WHERE name = ? AND alias = ?"), (name, alias)
                )
            elif previous is None:
                cur.execute(
                    self._sql(
                        "INSERT INTO aliases (name, alias, version, updated_at) VALUES (?, ?, ?, ?)"
                    ),
                    (name, alias, version, to_micros(at)),
                )
            else:
                cur.execute(
                    self._sql(
                        "UPDATE aliases SET version = ?, updated_at = ? WHERE name = ? AND alias = ?"
                    ),
                    (version, to_micros(at), name, alias),
                )
            cur.execute(
                self._sql(
                    "INSERT INTO alias_history (name, alias, version, previous_version, "
                    "changed_at, reason) VALUES (?, ?, ?, ?, ?, ?)"
                ),
                (name, alias, version, previous, to_micros(at), reason),
            )
        return AliasChange(
            name=name,
            alias=alias,
            version=version,
            previous_version=previous,
            changed_at=at,
            reason=reason,
        )

    def alias_history(self, name: str, alias: str) -> list[AliasChange]:
        found = self._fetchall(
            "SELECT name, alias, version, previous_version, changed_at, reason FROM alias_history "
            "WHERE name = ? AND alias = ? ORDER BY id",
            (name, alias),
        )
        return [
            AliasChange(
                name=r[0],
                alias=r[1],
                version=None if r[2] is None else int(r[2]),
                previous_version=None if r[3] is None else int(r[3]),
                changed_at=from_micros(int(r[4])),
                reason=r[5],
            )
            for r in found
        ]

    def get_model_settings(self, name: str) -> ModelSettings:
        found = self._fetchall(
            "SELECT log_data, retention_days, nullable FROM models WHERE name = ?", (name,)
        )
        if not found:
            raise NotFound(f"no model named {echo(name)}")
        return _settings(*found[0])

    def set_model_settings(self, name: str, settings: ModelSettings) -> None:
        changed = self._execute(
            "UPDATE models SET log_data = ?, retention_days = ?, nullable = ? WHERE name = ?",
            (int(settings.log_data), settings.retention_days,
             dumps(list(settings.nullable)).decode() if settings.nullable else None, name),
        )
        if changed == 0:
            raise NotFound(f"no model named {echo(name)}")

    def rename_model(self, old: str, new: str) -> dict[str, int]:
        """Give model ``old`` the name ``new`` in every table that names it, in one transaction;
        return the rows moved per table.

        ``new`` must not be taken. Incident ids, which start with the model's name, and the
        schedule's claim follow the name, so that the next evaluation updates the same
        incidents. Text written at the time (stored answers, incident summaries, the
        reasons in the alias history) keeps the old name: it is a record of what was.
        """
        if old == new:
            raise InvalidInput("the new name is the old one")
        moved: dict[str, int] = {}
        try:
            with self._transaction() as cur:
                self._serialize(cur, f"model:{old}")
                self._serialize(cur, f"model:{new}")
                cur.execute(self._sql("SELECT 1 FROM models WHERE name = ?"), (new,))
                if cur.fetchone():
                    raise Conflict(f"a model named {echo(new)} exists already")
                # the versions refer to the models row: make the new row, move the rest, drop the old
                cur.execute(
                    self._sql(
                        "INSERT INTO models (name, created_at, log_data, retention_days, nullable) "
                        "SELECT ?, created_at, log_data, retention_days, nullable FROM models WHERE name = ?"
                    ),
                    (new, old),
                )
                if cur.rowcount != 1:
                    raise NotFound(f"no model named {echo(old)}")
                moved["models"] = 1
                for table, column in MODEL_NAME_COLUMNS[1:]:
                    cur.execute(self._sql(f"UPDATE {table} SET {column} = ? WHERE {column} = ?"), (new, old))
                    moved[table] = int(cur.rowcount or 0)
                cur.execute(self._sql("DELETE FROM models WHERE name = ?"), (old,))
                old_prefix, new_prefix = f"{old}:", f"{new}:"
                cur.execute(
                    self._sql(
                        "UPDATE incidents SET incident_id = ? || substr(incident_id, ?) "
                        "WHERE model_name = ? AND substr(incident_id, 1, ?) = ?"
                    ),
                    (new_prefix, len(old_prefix) + 1, new, len(old_prefix), old_prefix),
                )
                moved["incident_ids"] = int(cur.rowcount or 0)
                cur.execute(
                    self._sql("UPDATE claims SET claim_key = ? WHERE claim_key = ?"),
                    (f"schedule:{new}", f"schedule:{old}"),
                )
        except LoopwatchError:
            raise
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise Conflict(f"rows naming {echo(new)} exist already; the model was not renamed") from exc
            raise StoreError(f"could not rename model {echo(old)}: {exc}") from exc
        return moved

    def model_exists(self, name: str) -> bool:
        return bool(self._fetchall("SELECT 1 FROM models WHERE name = ?", (name,)))


    @staticmethod
    def _version_from_row(r: Sequence[Any], aliases: dict[str, int]) -> ModelVersion:
        version = int(r[1])
        return ModelVersion(
            name=r[0],
            version=version,
            created_at=from_micros(int(r[2])),
            task=r[3],
            estimator=r[4],
            artifact_sha256=r[5],
            reference_sha256=r[6],
            schema=FeatureSchema.from_dict(loads(r[7])),
            metrics=loads(r[8]),
            data_summary=loads(r[9]),
            params=loads(r[10]),
            profile_sha256=r[11],
            aliases=tuple(sorted(a for a, v in aliases.items() if v == version)),
        )


def _settings(log_data: Any, retention: Any, nullable: Any) -> ModelSettings:
    return ModelSettings(
        log_data=bool(log_data), retention_days=None if retention is None else int(retention),
        nullable=tuple(loads(nullable)) if nullable else (),
    )
