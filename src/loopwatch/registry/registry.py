"""Register trained versions, move aliases, and load models safely.

Loading checks the artifact's SHA-256 against the one recorded at
registration, every time it is read from the store. Loaded models are kept in
a small per-process LRU cache; alias lookups are cached for a second so that
a promotion made by another worker is seen within that time.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import pandas as pd

from loopwatch.errors import Conflict, IntegrityError, InvalidInput, NotApplicable, NotFound, echo
from loopwatch.models.artifacts import dump_model, load_model, sha256_hex
from loopwatch.models.imputation import imputed_features
from loopwatch.models.training import TrainedModel, prepare_features
from loopwatch.records import (
    ALIASES,
    AliasChange,
    ModelSettings,
    ModelVersion,
    PredictionEvent,
    Rebaseline,
    TrainingEvent,
)
from loopwatch.records.jsonutil import dumps
from loopwatch.records.names import check_model_name, is_model_name
from loopwatch.registry.samples import decode_frame, encode_frame
from loopwatch.stores.base import EventQuery, Store

if TYPE_CHECKING:  # pragma: no cover
    from loopwatch.drift.profile import ReferenceProfile

event_logger = logging.getLogger("loopwatch.events")
_log = logging.getLogger("loopwatch.registry")

#: Seconds an alias lookup is trusted before the store is asked again.
ALIAS_TTL_SECONDS = 1.0
#: Results derived from versions' artifacts a registry keeps (see :meth:`Registry.derived`).
DERIVED_CACHE_SIZE = 64
#: Seconds a version whose artifact failed its check stays refused before it is read again.
REFUSAL_TTL_SECONDS = 30.0
#: How the alias history records the candidate cleared because production took its version
#: (after the reason of that change: ``promote``, ``gate``...).
CANDIDATE_PROMOTED = ": production now serves it"


@dataclass(frozen=True)
class LoadedModel:
    version: ModelVersion
    pipeline: Any
    #: Features the pipeline fills in when a request leaves them null (see
    #: :func:`~loopwatch.models.imputation.imputed_features`).
    imputes: frozenset[str] = frozenset()

    @property
    def name(self) -> str:
        return self.version.name


def is_monitor_only(meta: ModelVersion) -> bool:
    """Whether the version has no model of its own: its predictions are made elsewhere and sent in."""
    return bool(meta.params.get("monitor_only"))


def refuse_monitor_only(meta: ModelVersion, what: str) -> None:
    """Raise :class:`NotApplicable` when ``what`` needs the model itself and ``meta`` has none."""
    if is_monitor_only(meta):
        raise NotApplicable(
            f"model {echo(meta.name)} version {meta.version} is monitor-only: loopwatch has no model to "
            f"{what} with; send its predictions to /v1/models/{meta.name}/events",
            detail={"monitor_only": True, "not_applicable": what},
        )




class Registry:
    def __init__(self, store: Store, *, cache_size: int = 8) -> None:
        self.store = store
        self.cache_size = cache_size
        self._models: OrderedDict[tuple[str, int], LoadedModel] = OrderedDict()
        self._aliases: dict[str, tuple[float, dict[str, int]]] = {}
        self._settings: dict[str, tuple[float, ModelSettings]] = {}
        # keyed by the profile's hash too: a rebaseline gives the version a new profile
        self._profiles: dict[tuple[str, int, str], ReferenceProfile] = {}
        self._loading: dict[tuple[str, int], threading.Lock] = {}
        self._refused: dict[tuple[str, int], tuple[float, IntegrityError]] = {}
        self._derived: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    # --- registering ----------------------------------------------------------------
    def check_name(self, name: str) -> str:
        """``name`` when a version may be registered under it: a name that follows the rule
        (:mod:`loopwatch.records.names`), or one stored before the rule, which stays usable
        from the library and the CLI until it is renamed."""
        if is_model_name(name):
            return name
        if isinstance(name, str) and name and self.store.model_exists(name):
            _log.warning("model %s breaks the name rule; rename it with 'loopwatch models rename'",
                         echo(name))
            return name
        return check_model_name(name)

    def register(
        self,
        name: str,
        trained: TrainedModel,
        *,
        client_id: str | None = None,
        alias: str | None = None,
        artifact: bytes | None = None,
    ) -> ModelVersion:
        """Store a trained model as the next version of ``name``.

        The first version of a model becomes ``production``; later ones become
        ``candidate`` unless another alias is named. ``artifact`` is the skops file the
        pipeline came from, stored as given (so its owner's hash is the version's); a
        monitor-only version (no pipeline) stores an empty one that is never loaded.
        """
        self.check_name(name)
        if artifact is None:
            artifact = b"" if trained.pipeline is None else dump_model(trained.pipeline)
        reference = encode_frame(trained.reference_sample)
        profile = trained.profile.to_bytes() if trained.profile is not None else None
        now = datetime.now(timezone.utc)
        version = self.store.create_model_version(
            name=name,
            created_at=now,
            task=trained.schema.task,
            estimator=trained.estimator,
            artifact=artifact,
            artifact_sha256=sha256_hex(artifact),
            reference=reference,
            reference_sha256=sha256_hex(reference),
            schema=trained.schema.to_dict(),
            metrics=trained.metrics,
            data_summary=trained.data_summary,
            params=trained.params,
            profile=profile,
            profile_sha256=sha256_hex(profile) if profile is not None else None,
        )
        event = TrainingEvent(
            event_id=uuid.uuid4().hex,
            model_name=name,
            model_version=version,
            timestamp=now,
            duration_ms=trained.duration_ms,
            data_summary=trained.data_summary,
            metrics=trained.metrics,
            params=trained.params,
            client_id=client_id,
        )
        self.store.write_training_event(event)
        if event_logger.isEnabledFor(logging.INFO):
            event_logger.info(dumps({"event": "training", **event.to_dict()}).decode())
        chosen = alias or ("production" if "production" not in self.aliases(name, fresh=True) else "candidate")
        self.set_alias(name, chosen, version, reason="registered")
        return self.store.get_model_version(name, version)

    # --- aliases --------------------------------------------------------------------
    def aliases(self, name: str, *, fresh: bool = False) -> dict[str, int]:
        now = time.monotonic()
        cached = self._aliases.get(name)
        if not fresh and cached is not None and now - cached[0] < ALIAS_TTL_SECONDS:
            return cached[1]
        found = self.store.get_aliases(name)
        self._aliases[name] = (now, found)
        return found

    def set_alias(self, name: str, alias: str, version: int | None, *, reason: str) -> AliasChange:
        """Point ``alias`` at ``version`` (``None`` removes it), recorded in the alias history.

        When production takes the version the candidate names, the candidate alias is
        cleared (and that is recorded too): the candidate is what is being evaluated
        against production, and a version cannot be evaluated against itself. Left in
        place it would keep the promoted version listed as a candidate, and the next
        ``promote`` would silently do nothing.
        """
        if alias not in ALIASES:
            raise InvalidInput(f"alias must be one of: {', '.join(ALIASES)}")
        change = self.store.set_alias(
            name, alias, version, reason=reason, at=datetime.now(timezone.utc)
        )
        if alias == "production" and version is not None and self.store.get_aliases(name).get("candidate") == version:
            try:
                self.store.set_alias(name, "candidate", None, reason=reason + CANDIDATE_PROMOTED,
                                     at=datetime.now(timezone.utc))
            except Conflict:  # another worker cleared it first
                pass
        self._aliases.pop(name, None)
        return change

    def promote(self, name: str, version: int | None = None, *, alias: str = "production") -> AliasChange:
        """Point ``alias`` at ``version``; without a version, promote the candidate."""
        if version is None:
            candidate = self.aliases(name, fresh=True).get("candidate")
            if candidate is None:
                self._require_model(name)
                raise Conflict(f"model {echo(name)} has no candidate to promote; name a version")
            version = candidate
        return self.set_alias(name, alias, version, reason="promote")

    def rollback(self, name: str) -> AliasChange:
        """Return ``production`` to the version it held before its latest change."""
        current = self.aliases(name, fresh=True).get("production")
        if current is None:
            self._require_model(name)
            raise Conflict(f"model {echo(name)} has no production version")
        for change in reversed(self.store.alias_history(name, "production")):
            if change.version == current and change.previous_version not in (None, current):
                back = self.set_alias(name, "production", change.previous_version, reason="rollback")
                self._restore_candidate(name, current)
                return back
        raise Conflict(f"model {echo(name)} has no earlier production version to roll back to")

    def _restore_candidate(self, name: str, rolled_back: int) -> None:
        """A rollback undoes the whole promotion: the version it took out of production is the
        candidate again (so it is shadowed and can pass the gate later), when its promotion
        cleared the candidate alias and nothing has been made candidate since."""
        if "candidate" in self.store.get_aliases(name):
            return
        history = self.store.alias_history(name, "candidate")
        last = history[-1] if history else None
        if last is not None and last.version is None and last.previous_version == rolled_back \
                and last.reason.endswith(CANDIDATE_PROMOTED):
            self.set_alias(name, "candidate", rolled_back, reason="rollback")

    # --- loading --------------------------------------------------------------------
    def resolve(self, name: str, version: int | str | None = None) -> ModelVersion:
        """A version by number, by alias, or the production version."""
        if version is None or isinstance(version, str):
            alias = version or "production"
            if isinstance(version, str) and version.isdigit():
                return self.resolve(name, int(version))
            number = self.aliases(name).get(alias)
            if number is None:
                self._require_model(name)
                raise NotFound(f"model {echo(name)} has no {alias} version")
            version = number
        cached = self._models.get((name, version))
        if cached is not None:
            return cached.version
        return self.store.get_model_version(name, version)

    def load(self, name: str, version: int | str | None = None) -> LoadedModel:
        """The model, verified. A production version whose artifact fails its check (changed
        after registration, or holding untrusted types) is refused and the version production
        held before it is served instead, with an integrity alarm in the log; a version asked
        for by number or as ``candidate`` is refused outright."""
        number = self.resolve(name, version).version
        try:
            return self._load_verified(name, number)
        except IntegrityError as exc:
            if version not in (None, "production"):
                raise
            return self._last_good(name, number, exc)

    def _last_good(self, name: str, refused: int, error: IntegrityError) -> LoadedModel:
        _log.error(
            "integrity alarm: model %r version %d was refused at load (%s); serving the last "
            "production version that loads", name, refused, error.message,
        )
        tried = {refused}
        for change in reversed(self.store.alias_history(name, "production")):
            for number in (change.version, change.previous_version):
                if number is None or number in tried:
                    continue
                tried.add(number)
                try:
                    loaded = self._load_verified(name, number)
                except IntegrityError:
                    continue
                _log.error("integrity alarm: model %r is served by version %d instead of %d", name, number, refused)
                return loaded
        raise error

    def _load_verified(self, name: str, number: int) -> LoadedModel:
        key = (name, number)
        refused = self._refused.get(key)
        if refused is not None and time.monotonic() - refused[0] < REFUSAL_TTL_SECONDS:
            # not read and hashed again on every request; a fresh error, so tracebacks do not pile up
            raise IntegrityError(refused[1].message, detail=refused[1].detail)
        with self._lock:
            cached = self._models.get(key)
            if cached is not None:
                self._models.move_to_end(key)
                return cached
        with self._lock:
            loading = self._loading.setdefault(key, threading.Lock())
        # the first requests after a start or promotion arrive together: one loads,
        # the others wait for it instead of each reading and verifying the artifact
        with loading:
            with self._lock:
                cached = self._models.get(key)
            if cached is not None:
                return cached
            meta = self.store.get_model_version(name, number)
            refuse_monitor_only(meta, "predict")
            try:
                pipeline = load_model(
                    self.store.get_artifact(meta.artifact_sha256), expected_sha256=meta.artifact_sha256,
                    trusted=meta.params.get("trusted_types") or (),
                )
            except IntegrityError as exc:
                self._refused[key] = (time.monotonic(), exc)
                raise
            self._refused.pop(key, None)
            loaded = LoadedModel(meta, pipeline, imputed_features(pipeline))
            with self._lock:
                self._models[key] = loaded
                while len(self._models) > self.cache_size:
                    self._models.popitem(last=False)
            return loaded

    def reference_sample(self, name: str, version: int | str | None = None) -> pd.DataFrame:
        meta = self.resolve(name, version)
        data = self.store.get_artifact(meta.reference_sha256)
        if sha256_hex(data) != meta.reference_sha256:
            raise IntegrityError("reference sample hash mismatch")
        return decode_frame(data)

    def profile(
        self, name: str, version: int | str | None = None, *, training: bool = False
    ) -> ReferenceProfile:
        """The version's reference profile: its latest rebaseline's, else (or when ``training``)
        the one built at training, which holds what the model was trained on (its adversarial
        detector among it).

        Checked against its hash when read from the store, cached per process by hash.
        """
        meta = self.resolve(name, version)
        rebaselines = [] if training else [
            r for r in self.store.list_rebaselines(name) if r.model_version == meta.version]
        sha = rebaselines[-1].profile_sha256 if rebaselines else meta.profile_sha256
        if sha is None:
            raise NotFound(f"model {echo(name)} version {meta.version} has no reference profile")
        key = (name, meta.version, sha)
        cached = self._profiles.get(key)
        if cached is not None:
            return cached
        data = self.store.get_artifact(sha)
        if sha256_hex(data) != sha:
            raise IntegrityError("reference profile hash mismatch")
        from loopwatch.drift.profile import ReferenceProfile

        loaded = ReferenceProfile.from_bytes(data)
        with self._lock:
            self._profiles[key] = loaded
            while len(self._profiles) > self.cache_size:
                self._profiles.pop(next(iter(self._profiles)))
        return loaded

    def derived(self, key: tuple[Any, ...], build: Callable[[], Any], *,
                keep: Callable[[Any], bool] | None = None) -> Any:
        """What ``build`` computes from a version's stored artifacts (a segment's reference,
        feature importance, a fitted extraction detector), kept on this registry, at most
        ``DERIVED_CACHE_SIZE`` of them. ``key`` must name the hashes it is built from, so that
        it is never stale; ``keep`` may refuse to keep a result (one built from partial data)."""
        with self._lock:
            if key in self._derived:
                self._derived.move_to_end(key)
                return self._derived[key]
        value = build()  # outside the lock: building may take seconds
        if keep is None or keep(value):
            with self._lock:
                self._derived[key] = value
                while len(self._derived) > DERIVED_CACHE_SIZE:
                    self._derived.popitem(last=False)
        return value

    def rebaseline(
        self,
        name: str,
        version: int,
        since: datetime,
        until: datetime,
        *,
        reason: str,
        at: datetime,
        seed: int = 0,
    ) -> Rebaseline:
        """Rebuild the version's reference profile from its logged inputs in ``[since, until)``.

        For a change accepted as the new normal: from then on :meth:`profile`
        (and so the monitor) compares with this period instead of the training
        data. The model's outputs in the period become the reference of
        prediction drift. Needs at least 20 events logged with their inputs.
        """
        meta = self.store.get_model_version(name, version)
        query = EventQuery(model_name=name, model_version=version, since=since, until=until, limit=10_000)
        events = [e for e in self.store.iter_events(query) if e.data is not None]
        if len(events) < 20:
            raise InvalidInput(
                f"model {echo(name)} version {version} has {len(events)} events with logged inputs "
                "in that period; a rebaseline needs at least 20"
            )
        frame = pd.DataFrame([e.data for e in events])
        for feature in meta.schema.names:
            if feature not in frame.columns:
                frame[feature] = None
        from loopwatch.drift.profile import build_profile

        profile = build_profile(
            prepare_features(frame, meta.schema),
            numeric=meta.schema.numeric,
            categorical=meta.schema.categorical,
            outputs=_logged_outputs(events, meta),
            seed=seed,
        )
        data = profile.to_bytes()
        return self.store.add_rebaseline(
            model_name=name,
            model_version=version,
            since=since,
            until=until,
            profile=data,
            profile_sha256=sha256_hex(data),
            at=at,
            reason=reason,
        )

    def settings(self, name: str, *, fresh: bool = False) -> ModelSettings:
        now = time.monotonic()
        cached = self._settings.get(name)
        if not fresh and cached is not None and now - cached[0] < ALIAS_TTL_SECONDS:
            return cached[1]
        found = self.store.get_model_settings(name)
        self._settings[name] = (now, found)
        return found

    def update_settings(self, name: str, settings: ModelSettings) -> ModelSettings:
        """Store ``settings``; the features declared nullable must be features of a version."""
        if settings.nullable:
            known = {n for v in self.store.list_versions(name) for n in v.schema.names}
            unknown = sorted(set(settings.nullable) - known)
            if unknown:
                raise InvalidInput(
                    f"not features of model {echo(name)}: {', '.join(map(repr, unknown[:10]))}; "
                    f"its features are: {', '.join(sorted(known)[:50])}"
                )
            settings = replace(settings, nullable=tuple(sorted(set(settings.nullable))))
        self.store.set_model_settings(name, settings)
        self._settings.pop(name, None)
        return settings

    def rename(self, old: str, new: str) -> dict[str, int]:
        """Give model ``old`` the name ``new`` everywhere it is stored (one transaction); the
        way out for a name stored before the name rule. Returns the rows moved per table."""
        check_model_name(new, what="new model name")
        moved = self.store.rename_model(old, new)
        with self._lock:
            for cache in (self._models, self._refused):
                for key in [k for k in cache if k[0] == old]:
                    cache.pop(key, None)
            for profile_key in [k for k in self._profiles if k[0] == old]:
                self._profiles.pop(profile_key, None)
        self._aliases.pop(old, None)
        self._settings.pop(old, None)
        _log.info("model %s renamed to %s", echo(old), echo(new))
        return moved

    def _require_model(self, name: str) -> None:
        self.store.get_model_settings(name)


def _logged_outputs(events: list[PredictionEvent], meta: ModelVersion) -> pd.DataFrame:
    """The model's logged outputs as training profiles them: ``prediction`` (a string for
    classifiers, a float for regressors) and ``probability_<class>`` per class."""
    if meta.task != "classification":
        return pd.DataFrame(
            {"prediction": [float(e.prediction[0]) if e.prediction else np.nan for e in events]}
        )
    out: dict[str, Any] = {"prediction": [str(e.prediction[0]) if e.prediction else None for e in events]}
    if all(e.probability is not None for e in events):
        for i, label in enumerate(meta.schema.classes):
            out[f"probability_{label}"] = np.array(
                [e.probability[i] for e in events if e.probability is not None], dtype=np.float64
            )
    return pd.DataFrame(out)
