"""Schema migrations, recorded in the ``schema_migrations`` table.

Each migration is a list of statements written once for both dialects; the
few type names that differ are filled in per dialect. Times are BIGINT
microseconds since the epoch (UTC) in both, so one query serves both; JSON
is TEXT in both.
"""

from __future__ import annotations

from typing import Final

DIALECT_TYPES: Final = {
    "sqlite": {"blob": "BLOB", "serial": "INTEGER PRIMARY KEY AUTOINCREMENT", "float": "REAL"},
    "postgresql": {"blob": "BYTEA", "serial": "BIGSERIAL PRIMARY KEY", "float": "DOUBLE PRECISION"},
}

MIGRATIONS: Final[list[tuple[int, str, list[str]]]] = [
    (
        1,
        "prediction log and registry",
        [
            """CREATE TABLE models (
                name TEXT PRIMARY KEY,
                created_at BIGINT NOT NULL,
                log_data INTEGER NOT NULL DEFAULT 1,
                retention_days INTEGER
            )""",
            """CREATE TABLE artifacts (
                sha256 TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                size BIGINT NOT NULL,
                content {blob} NOT NULL,
                created_at BIGINT NOT NULL
            )""",
            """CREATE TABLE model_versions (
                name TEXT NOT NULL REFERENCES models(name),
                version INTEGER NOT NULL,
                created_at BIGINT NOT NULL,
                task TEXT NOT NULL,
                estimator TEXT NOT NULL,
                artifact_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
                reference_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
                feature_schema TEXT NOT NULL,
                metrics TEXT NOT NULL,
                data_summary TEXT NOT NULL,
                params TEXT NOT NULL,
                PRIMARY KEY (name, version)
            )""",
            """CREATE TABLE aliases (
                name TEXT NOT NULL,
                alias TEXT NOT NULL,
                version INTEGER NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (name, alias)
            )""",
            """CREATE TABLE alias_history (
                id {serial},
                name TEXT NOT NULL,
                alias TEXT NOT NULL,
                version INTEGER,
                previous_version INTEGER,
                changed_at BIGINT NOT NULL,
                reason TEXT NOT NULL
            )""",
            "CREATE INDEX alias_history_by_name ON alias_history (name, alias, id)",
            """CREATE TABLE fingerprints (
                id TEXT PRIMARY KEY,
                content TEXT NOT NULL,
                first_seen BIGINT NOT NULL
            )""",
            """CREATE TABLE requests (
                request_id TEXT PRIMARY KEY,
                model_name TEXT NOT NULL,
                model_version INTEGER NOT NULL,
                ts BIGINT NOT NULL,
                logged_at BIGINT NOT NULL,
                n_rows INTEGER NOT NULL,
                runtime_ms {float} NOT NULL,
                request_type TEXT NOT NULL,
                client_id TEXT,
                fingerprint_id TEXT NOT NULL,
                body_sha256 TEXT NOT NULL,
                request_summary TEXT NOT NULL,
                response {blob} NOT NULL,
                replayed INTEGER NOT NULL
            )""",
            "CREATE INDEX requests_by_model_time ON requests (model_name, ts)",
            """CREATE TABLE events (
                request_id TEXT NOT NULL,
                row_index INTEGER NOT NULL,
                model_name TEXT NOT NULL,
                model_version INTEGER NOT NULL,
                ts BIGINT NOT NULL,
                logged_at BIGINT NOT NULL,
                runtime_ms {float} NOT NULL,
                row_runtime_ms {float} NOT NULL,
                prediction TEXT NOT NULL,
                probability TEXT,
                input_summary TEXT NOT NULL,
                data TEXT,
                request_type TEXT NOT NULL,
                client_id TEXT,
                fingerprint_id TEXT NOT NULL,
                replayed INTEGER NOT NULL,
                PRIMARY KEY (request_id, row_index)
            )""",
            "CREATE INDEX events_by_model_time ON events (model_name, ts, request_id, row_index)",
            "CREATE INDEX events_by_version_time ON events (model_name, model_version, ts)",
            """CREATE TABLE rejections (
                id {serial},
                model_name TEXT NOT NULL,
                ts BIGINT NOT NULL,
                client_id TEXT,
                reason TEXT NOT NULL,
                status INTEGER NOT NULL,
                message TEXT NOT NULL
            )""",
            "CREATE INDEX rejections_by_model_time ON rejections (model_name, ts)",
            """CREATE TABLE training_events (
                event_id TEXT PRIMARY KEY,
                model_name TEXT NOT NULL,
                model_version INTEGER NOT NULL,
                ts BIGINT NOT NULL,
                duration_ms {float} NOT NULL,
                data_summary TEXT NOT NULL,
                metrics TEXT NOT NULL,
                params TEXT NOT NULL,
                client_id TEXT
            )""",
        ],
    ),
    (
        2,
        "reference profiles of model versions",
        ["ALTER TABLE model_versions ADD COLUMN profile_sha256 TEXT REFERENCES artifacts(sha256)"],
    ),
    (
        3,
        "one index fewer on events",
        # every logged row paid for this index; a version filter reads the
        # (model, time) index and checks the version on the rows it finds
        ["DROP INDEX events_by_version_time"],
    ),
    (
        4,
        "feedback: entity ids, labels, business metrics, incidents, claims, configs, rebaselines",
        [
            "ALTER TABLE events ADD COLUMN entity_id TEXT",
            # partial: rows logged without an entity id (most of them) pay nothing for it
            "CREATE INDEX events_by_entity ON events (model_name, entity_id, ts, request_id, row_index) "
            "WHERE entity_id IS NOT NULL",
            # the current label of each prediction row; every revision is in label_revisions
            """CREATE TABLE labels (
                request_id TEXT NOT NULL,
                row_index INTEGER NOT NULL,
                model_name TEXT NOT NULL,
                model_version INTEGER NOT NULL,
                entity_id TEXT,
                label TEXT NOT NULL,
                label_time BIGINT NOT NULL,
                prediction_time BIGINT NOT NULL,
                client_id TEXT,
                received_at BIGINT NOT NULL,
                revision INTEGER NOT NULL,
                PRIMARY KEY (request_id, row_index)
            )""",
            "CREATE INDEX labels_by_label_time ON labels "
            "(model_name, label_time, received_at, request_id, row_index)",
            "CREATE INDEX labels_by_prediction_time ON labels "
            "(model_name, prediction_time, received_at, request_id, row_index)",
            """CREATE TABLE label_revisions (
                request_id TEXT NOT NULL,
                row_index INTEGER NOT NULL,
                revision INTEGER NOT NULL,
                model_name TEXT NOT NULL,
                model_version INTEGER NOT NULL,
                entity_id TEXT,
                label TEXT NOT NULL,
                label_time BIGINT NOT NULL,
                prediction_time BIGINT NOT NULL,
                client_id TEXT,
                received_at BIGINT NOT NULL,
                PRIMARY KEY (request_id, row_index, revision)
            )""",
            # retention deletes the history of predictions past their model's period
            "CREATE INDEX label_revisions_by_prediction_time ON label_revisions (model_name, prediction_time)",
            # segment '' stands for "no segment": NULLs would never conflict in the key
            """CREATE TABLE business_metrics (
                name TEXT NOT NULL,
                ts BIGINT NOT NULL,
                segment TEXT NOT NULL,
                value {float} NOT NULL,
                client_id TEXT,
                received_at BIGINT NOT NULL,
                PRIMARY KEY (name, ts, segment)
            )""",
            "CREATE INDEX business_metrics_by_time ON business_metrics (ts)",
            """CREATE TABLE incidents (
                incident_id TEXT PRIMARY KEY,
                model_name TEXT NOT NULL,
                kind TEXT NOT NULL,
                loop TEXT NOT NULL,
                status TEXT NOT NULL,
                first_seen BIGINT NOT NULL,
                last_seen BIGINT NOT NULL,
                detected_at BIGINT NOT NULL,
                summary TEXT NOT NULL,
                evidence TEXT NOT NULL,
                action TEXT NOT NULL,
                acknowledged_at BIGINT,
                acknowledged_by TEXT,
                note TEXT
            )""",
            "CREATE INDEX incidents_by_model ON incidents (model_name, status)",
            """CREATE TABLE claims (
                claim_key TEXT PRIMARY KEY,
                claimed_at BIGINT NOT NULL
            )""",
            """CREATE TABLE monitor_configs (
                model_name TEXT NOT NULL,
                version INTEGER NOT NULL,
                config TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                author TEXT,
                PRIMARY KEY (model_name, version)
            )""",
            """CREATE TABLE rebaselines (
                model_name TEXT NOT NULL,
                model_version INTEGER NOT NULL,
                number INTEGER NOT NULL,
                since BIGINT NOT NULL,
                until BIGINT NOT NULL,
                profile_sha256 TEXT NOT NULL REFERENCES artifacts(sha256),
                created_at BIGINT NOT NULL,
                reason TEXT NOT NULL,
                PRIMARY KEY (model_name, model_version, number)
            )""",
        ],
    ),
    (
        5,
        "api keys and their usage",
        [
            # only the SHA-256 of a key's token is kept, never the token
            """CREATE TABLE api_keys (
                key_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                token_sha256 TEXT NOT NULL,
                scopes TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                created_by TEXT,
                expires_at BIGINT,
                revoked_at BIGINT,
                rate_per_second BIGINT,
                daily_budget BIGINT
            )""",
            # one row per key and kind ('second', 'day'): the current window and what was
            # granted in it, so the table does not grow with time
            """CREATE TABLE key_usage (
                key_id TEXT NOT NULL REFERENCES api_keys(key_id),
                kind TEXT NOT NULL,
                window_start BIGINT NOT NULL,
                granted BIGINT NOT NULL,
                last_grant BIGINT NOT NULL,
                PRIMARY KEY (key_id, kind)
            )""",
        ],
    ),
    (
        6,
        "quarantine of training rows the poisoning screens set aside",
        [
            # one row per labelled prediction row; a release holds for the label
            # revision that was screened, so a corrected label is screened afresh
            """CREATE TABLE quarantine (
                model_name TEXT NOT NULL,
                request_id TEXT NOT NULL,
                row_index INTEGER NOT NULL,
                label_revision INTEGER NOT NULL,
                reasons TEXT NOT NULL,
                source TEXT,
                quarantined_at BIGINT NOT NULL,
                released_at BIGINT,
                released_by TEXT,
                PRIMARY KEY (model_name, request_id, row_index)
            )""",
            "CREATE INDEX quarantine_by_time ON quarantine (model_name, quarantined_at, request_id, row_index)",
        ],
    ),
    (
        7,
        "retention counts from when a request was logged",
        [
            # retention deletes by logged_at, not by event time: a backfill of old
            # events is as young as the day it was logged
            "CREATE INDEX requests_by_model_logged_at ON requests (model_name, logged_at)",
        ],
    ),
    (
        8,
        "scheduled evaluations: failures with their cause, and each model's last success",
        [
            """CREATE TABLE evaluation_failures (
                id {serial},
                model_name TEXT NOT NULL,
                failed_at BIGINT NOT NULL,
                cause TEXT NOT NULL,
                message TEXT NOT NULL
            )""",
            "CREATE INDEX evaluation_failures_by_time ON evaluation_failures (model_name, failed_at)",
            # one row per model, so that a success every few minutes does not grow a table
            """CREATE TABLE evaluation_status (
                model_name TEXT PRIMARY KEY,
                last_success_at BIGINT,
                last_failure_at BIGINT,
                failures BIGINT NOT NULL
            )""",
        ],
    ),
    (
        9,
        "features a model's settings declare nullable",
        # a JSON list of feature names; NULL (models made before) means none
        ["ALTER TABLE models ADD COLUMN nullable TEXT"],
    ),
    (
        10,
        "ingested events: a content hash per event, external version labels",
        [
            # an ingested event's hash tells a client's retry (same content: a duplicate)
            # from a reuse of its (request_id, row_index) (other content: a conflict);
            # NULL for events loopwatch predicted itself
            "ALTER TABLE events ADD COLUMN content_sha256 TEXT",
            # one integer version per external label: the primary key is what keeps two
            # workers seeing a new label at once from creating two versions
            """CREATE TABLE external_versions (
                model_name TEXT NOT NULL,
                label TEXT NOT NULL,
                version INTEGER NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (model_name, label)
            )""",
        ],
    ),
    (
        11,
        "key revocations seen at once: a generation that every revocation moves on",
        [
            # one row; a revocation adds 1 in its own transaction, and every request compares
            # it with the generation its worker's cached keys were read at (auth/verifier.py)
            """CREATE TABLE key_generation (
                id INTEGER PRIMARY KEY,
                generation BIGINT NOT NULL
            )""",
            "INSERT INTO key_generation (id, generation) VALUES (1, 0)",
        ],
    ),
    (
        12,
        "window summaries per model version and window, and how far each model's log is summarised",
        [
            # one row per (model, kind of window, start, version): the summariser merges a
            # batch's summaries into the row in place; kind is 'hour' (the base window) or
            # 'day' (hours rolled up past their retention); the payload is the summary's
            # JSON, zlib-compressed, its form named by encoding (stores/sql_summaries.py)
            """CREATE TABLE window_summaries (
                model_name TEXT NOT NULL,
                model_version INTEGER NOT NULL,
                kind TEXT NOT NULL,
                window_start BIGINT NOT NULL,
                window_end BIGINT NOT NULL,
                layout_id TEXT NOT NULL,
                encoding TEXT NOT NULL,
                payload {blob} NOT NULL,
                n_rows BIGINT NOT NULL,
                built_at BIGINT NOT NULL,
                PRIMARY KEY (model_name, kind, window_start, model_version)
            )""",
            # the log is summarised through logged_through: every request the store committed
            # at or before it (logged_at, which the store sets when it commits) is in the
            # summaries, whatever its event time; a rebuild starts again from NULL
            # labels_through: labels received at or before it are in the windows' label parts
            """CREATE TABLE summary_watermarks (
                model_name TEXT PRIMARY KEY,
                logged_through BIGINT NOT NULL,
                labels_through BIGINT,
                updated_at BIGINT NOT NULL
            )""",
            # which windows new labels (and corrections) reach: labels by when they arrived
            "CREATE INDEX labels_by_received_at ON labels (model_name, received_at)",
        ],
    ),
]


#: Every column that holds a model's name, by table: what renaming a model rewrites
#: (``models`` first, the table the others refer to). A test compares it with the schema,
#: so that a table added later cannot be forgotten.
MODEL_NAME_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("models", "name"),
    ("model_versions", "name"),
    ("aliases", "name"),
    ("alias_history", "name"),
    ("requests", "model_name"),
    ("events", "model_name"),
    ("rejections", "model_name"),
    ("training_events", "model_name"),
    ("labels", "model_name"),
    ("label_revisions", "model_name"),
    ("incidents", "model_name"),
    ("monitor_configs", "model_name"),
    ("rebaselines", "model_name"),
    ("quarantine", "model_name"),
    ("evaluation_failures", "model_name"),
    ("evaluation_status", "model_name"),
    ("external_versions", "model_name"),
    ("window_summaries", "model_name"),
    ("summary_watermarks", "model_name"),
)


def statements_for(dialect: str, statements: list[str]) -> list[str]:
    types = DIALECT_TYPES[dialect]
    return [s.format(**types) for s in statements]
