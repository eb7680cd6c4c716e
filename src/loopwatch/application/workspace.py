"""The library's front door: one object over a store, its registry and its log writer.

The CLI is a thin layer over this; scripts and notebooks use it directly::

    from loopwatch import Settings, Workspace
    with Workspace(Settings.from_env()) as ws:
        version = ws.train("churn", "customers.csv", target="churned")
        result = ws.predict("churn", rows)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Sequence

import pandas as pd

from loopwatch.config import Settings
from loopwatch.errors import Conflict, InvalidInput, echo
from loopwatch.features.frames import canonical_column
from loopwatch.features.schema import Task
from loopwatch.application.prediction import PredictCall, Predictor
from loopwatch.records import ModelVersion, RequestOutcome
from loopwatch.records.jsonutil import loads
from loopwatch.registry import Registry
from loopwatch.stores import open_store
from loopwatch.stores.base import Store
from loopwatch.stores.writer import GroupCommitWriter
from loopwatch.features.tables import read_table

if TYPE_CHECKING:  # pragma: no cover
    from loopwatch.loops.gate import GateDecision
    from loopwatch.loops.labelling import QueueItem
    from loopwatch.records import AliasChange
    from loopwatch.application.retraining import RetrainResult
    from loopwatch.application.summaries import Summariser


@dataclass(frozen=True)
class Prediction:
    request_id: str
    version: int
    predictions: list[list[Any]]
    probabilities: list[list[float]] | None
    classes: list[Any] | None
    outcome: str


def open_writer(store: Store, settings: Settings, *,
                on_commit: Callable[[int, int, float], None] | None = None) -> GroupCommitWriter:
    """The group-commit writer, started, with every option the settings give: the one place
    the library, the CLI and the service build it."""
    return GroupCommitWriter(
        store,
        queue_max_requests=settings.queue_max_requests,
        batch_max_requests=settings.batch_max_requests,
        batch_max_wait_ms=settings.batch_max_wait_ms,
        retry_after_seconds=settings.retry_after_seconds,
        on_commit=on_commit,
    ).start()


class Workspace:
    """The store, its registry, the predictor and the log writer, built once from the settings:
    what the library, the CLI and the service all stand on."""

    def __init__(self, settings: Settings | None = None, *, store: Store | None = None,
                 on_commit: Callable[[int, int, float], None] | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._own_store = store is None
        self.store = store or open_store(
            self.settings.database_url, sqlite_synchronous=self.settings.sqlite_synchronous
        )
        self.registry = Registry(self.store, cache_size=self.settings.model_cache_size)
        self.predictor = Predictor(self.registry, max_rows=self.settings.max_rows_per_request)
        self._on_commit = on_commit
        self._writer: GroupCommitWriter | None = None
        self._summariser: Summariser | None = None

    def __enter__(self) -> Workspace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._own_store:
            self.store.close()

    @property
    def writer(self) -> GroupCommitWriter:
        """The log writer, started on first use."""
        if self._writer is None:
            self._writer = open_writer(self.store, self.settings, on_commit=self._on_commit)
        return self._writer

    @property
    def summariser(self) -> Summariser:
        """The summariser of this workspace's store (application/summaries.py)."""
        if self._summariser is None:
            from loopwatch.application.summaries import Summariser

            self._summariser = Summariser(self.store, self.registry, settings=self.settings)
        return self._summariser

    def delete_request(self, request_id: str) -> int:
        """Erase a logged request, and rebuild the summary windows it was in (summaries built on
        demand included, with the summariser off)."""
        from loopwatch.application.summaries import delete_request

        return delete_request(self.store, self.summariser, request_id)

    def rename_model(self, old: str, new: str) -> dict[str, int]:
        """Rename model ``old`` to ``new`` in every table that names it, in one transaction
        (the way to give a name stored before the name rule one that the service accepts).
        Returns the rows moved per table."""
        return self.registry.rename(old, new)

    def train(
        self,
        name: str,
        data: str | Path | pd.DataFrame,
        *,
        target: str,
        task: Task | None = None,
        estimator: str | None = None,
        categorical: Sequence[str] = (),
        test_size: float = 0.2,
        seed: int = 0,
        alias: str | None = None,
        estimator_params: dict[str, Any] | None = None,
        screen: bool = True,
    ) -> ModelVersion:
        """Train and register a version. The rows are screened for poisoning first and those set
        aside are left out (listed in the version's ``params["screening"]``), as ``loopwatch train``
        and the service do (:mod:`loopwatch.application.training`); ``screen=False`` trains on
        every row, for a caller training on data it trusts."""
        from loopwatch.application.training import train_from_table

        frame = data if isinstance(data, pd.DataFrame) else read_table(data)
        return train_from_table(
            self.registry, name, frame, target=target, task=task, estimator=estimator, categorical=categorical,
            test_size=test_size, seed=seed, alias=alias, estimator_params=estimator_params, screen=screen,
        ).version

    def register(
        self,
        name: str,
        model: Any = None,
        *,
        reference: str | Path | pd.DataFrame,
        target: str | None = None,
        holdout: str | Path | pd.DataFrame | None = None,
        trust: Sequence[str] = (),
        prediction_column: str | None = None,
        probability_columns: Sequence[str] = (),
        probability_prefix: str | None = None,
        classes: Sequence[Any] = (),
        task: Task | None = None,
        categorical: Sequence[str] = (),
        nullable: Sequence[str] = (),
        exclude: Sequence[str] = (),
        alias: str | None = None,
        seed: int = 0,
    ) -> ModelVersion:
        """Register a model fitted elsewhere (``model``: the estimator, its skops bytes, or the
        path of its skops file; types beyond scikit-learn's named in ``trust``), or, with no model
        and a ``prediction_column``, a monitor-only model whose predictions are made elsewhere
        (:mod:`loopwatch.registry.registration`)."""
        from loopwatch.registry.registration import register_artifact, register_fitted, register_monitor_only

        def table(data: str | Path | pd.DataFrame) -> pd.DataFrame:
            return data if isinstance(data, pd.DataFrame) else read_table(data)

        shared: dict[str, Any] = {
            "reference": table(reference), "target": target, "task": task, "categorical": categorical,
            "nullable": nullable, "exclude": exclude, "alias": alias, "seed": seed,
        }
        if (model is None) == (prediction_column is None):
            raise InvalidInput("give a fitted model, or a prediction_column for a monitor-only model")
        if model is None:
            return register_monitor_only(
                self.registry, name, prediction_column=prediction_column or "",
                probability_columns=probability_columns, probability_prefix=probability_prefix, classes=classes,
                **shared)
        held = None if holdout is None else table(holdout)
        if isinstance(model, (str, Path)):
            model = Path(model).read_bytes()
        if isinstance(model, bytes):
            return register_artifact(self.registry, name, model, holdout=held, trust=trust, **shared)
        return register_fitted(self.registry, name, model, holdout=held, trust=trust, **shared)

    def predict(
        self,
        name: str,
        rows: Sequence[dict[str, Any]],
        *,
        version: int | str | None = None,
        request_id: str | None = None,
        request_type: str = "cli",
        client_id: str | None = None,
        entity_ids: Sequence[str | None] | None = None,
        timestamps: Sequence[datetime] | None = None,
    ) -> Prediction:
        """Predict and log durably; returns once the events are committed. ``entity_ids`` name
        the entity of each row, so that labels arriving later can find the prediction by it;
        ``timestamps`` give each row's event time (with a timezone), and mark the events
        replayed, as the HTTP API does for times a client sends."""
        logged = self.predictor.predict(
            PredictCall(
                model_name=name,
                rows=rows,
                version=version,
                request_id=request_id,
                client_id=client_id,
                request_type=request_type,
                entity_ids=entity_ids,
                timestamps=timestamps,
            )
        )
        outcome: RequestOutcome = self.writer.write(logged)
        if outcome.status == "conflict":
            raise Conflict(f"request id {echo(logged.request_id)} was already used with a different body")
        body = loads(outcome.response or logged.response)
        return Prediction(
            request_id=body["request_id"],
            version=body["version"],
            predictions=body["predictions"],
            probabilities=body.get("probabilities"),
            classes=body.get("classes"),
            outcome=outcome.status,
        )

    def predict_table(
        self,
        name: str,
        frame: pd.DataFrame,
        *,
        version: int | str | None = None,
        batch_rows: int = 1000,
        progress: Callable[[int], None] | None = None,
        client_id: str | None = None,
        entity_ids: Sequence[str | None] | None = None,
        timestamps: Sequence[datetime] | None = None,
    ) -> Iterable[Prediction]:
        """Predict a whole table in requests of ``batch_rows``, each logged as ``cli``;
        ``entity_ids`` and ``timestamps`` hold one entry per row of ``frame``.

        The table's categorical features are sent as their labels, whatever pandas read them
        as (``3.0`` in a CSV column of codes with a null, ``2139`` for a code it took for a
        number): the table is the user's own, and the label is what the category means.
        """
        schema = self.registry.resolve(name, version).schema
        frame = frame.copy()
        for feature in schema.features:
            if feature.kind == "categorical" and feature.name in frame.columns:
                frame[feature.name] = canonical_column(frame[feature.name], feature)
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        for what, values in (("entity_ids", entity_ids), ("timestamps", timestamps)):
            if values is not None and len(values) != len(records):
                raise InvalidInput(f"{what} has {len(values)} entries for {len(records)} rows")
        for start in range(0, len(records), batch_rows):
            end = start + batch_rows
            chunk = records[start:end]
            yield self.predict(
                name, chunk, version=version, request_type="cli", client_id=client_id,
                entity_ids=None if entity_ids is None else entity_ids[start:end],
                timestamps=None if timestamps is None else timestamps[start:end],
            )
            if progress is not None:
                progress(len(chunk))

    # --- data collection and model selection (loopwatch.application.labelling_queue, loopwatch.application.retraining) ---
    def labelling_queue(
        self,
        name: str,
        *,
        budget: int,
        since: datetime | None = None,
        until: datetime | None = None,
        random_share: float = 0.2,
        seed: int = 0,
        weights: Mapping[str, float] | None = None,
    ) -> list[QueueItem]:
        """Unlabelled predictions to label next: a random share, then the most informative."""
        from loopwatch.application.labelling_queue import labelling_queue

        return labelling_queue(
            self.store, self.registry, name, budget=budget, since=since, until=until,
            random_share=random_share, seed=seed, weights=weights,
        )

    def retrain(
        self,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        include_reference: bool = True,
        estimator: str | None = None,
        seed: int = 0,
        min_rows: int = 200,
        adversarial_share: float = 0.0,
    ) -> RetrainResult:
        """Train a candidate on the labelled predictions of ``[since, until)``, screened first
        (with adversarial examples added to its training rows when ``adversarial_share`` > 0)."""
        from loopwatch.application.retraining import retrain_candidate

        return retrain_candidate(
            self.store, self.registry, name, since=since, until=until,
            include_reference=include_reference, estimator=estimator, seed=seed, min_rows=min_rows,
            adversarial_share=adversarial_share,
        )

    def gate(
        self,
        name: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        metric: str | None = None,
        margin: float = 0.0,
        confidence: float = 0.95,
        latency_budget_ms: float | None = None,
        candidate: int | str | None = None,
        n_boot: int = 1000,
        seed: int = 0,
        promote: bool = False,
    ) -> tuple[GateDecision, AliasChange | None]:
        """The promotion gate on the labelled window; with ``promote``, promote when it passes."""
        from loopwatch.application.retraining import compare_on_window, promote_if_passed

        options: dict[str, Any] = {
            "since": since, "until": until, "metric": metric, "margin": margin, "confidence": confidence,
            "latency_budget_ms": latency_budget_ms, "candidate": candidate, "n_boot": n_boot, "seed": seed,
        }
        if promote:
            return promote_if_passed(self.store, self.registry, name, **options)
        return compare_on_window(self.store, self.registry, name, **options), None
