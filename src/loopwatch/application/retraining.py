"""Close the loops to data collection and model selection, over a store and its registry.

- :func:`labelled_window` gathers the labelled predictions of a period
  (:mod:`loopwatch.application.labelling_queue` chooses which unlabelled ones to label next).
- :func:`retrain_candidate` trains a candidate on the recent labelled window,
  screened first (:mod:`loopwatch.poisoning.screening`), and registers it as the
  ``candidate``.
- :func:`compare_on_window` scores production and the candidate on the same
  labelled rows and asks the gate (:mod:`loopwatch.loops.gate`);
  :func:`promote_if_passed` promotes when it passes.

Like :mod:`loopwatch.application.workspace`, this is library code with no edge of its own:
the CLI, the service and notebooks call it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Sequence, TypedDict

import numpy as np
import pandas as pd

from loopwatch.errors import Conflict, InvalidInput, LoopwatchError, NotApplicable, echo
from loopwatch.features import validate_rows
from loopwatch.features.frames import typed_frame
from loopwatch.features.schema import FeatureSchema, category_label
from loopwatch.loops.gate import GateDecision, promotion_gate
from loopwatch.poisoning.screening import ScreenSettings, screen_training_data
from loopwatch.models.training import train_model
from loopwatch.records import AliasChange, ModelVersion, PredictionEvent
from loopwatch.records.jsonutil import utc_iso
from loopwatch.registry import Registry
from loopwatch.registry.registry import refuse_monitor_only
from loopwatch.stores.base import EventQuery, Store

#: Columns of a labelled window besides the input features.
WINDOW_COLUMNS = (
    "request_id", "row_index", "entity_id", "timestamp", "model_version", "request_type",
    "prediction", "probability", "runtime_ms", "has_data", "label", "label_time", "label_source", "label_revision",
)
#: One-row requests timed per model when no shadow runtimes exist.
OFFLINE_TIMING_ROWS = 30


# --- the labelled window -----------------------------------------------------------------


def labelled_window(
    store: Store, registry: Registry, name: str, *, since: datetime | None = None, until: datetime | None = None,
    version: int | None = None,
) -> pd.DataFrame:
    """Predictions made in ``[since, until)`` (event time) that have a label, one row each.

    Columns: the input features (from the logged ``data``; NaN where inputs were
    not logged, see ``has_data``), then :data:`WINDOW_COLUMNS`. ``prediction`` is
    the first output; ``probability`` the per-class list. Shadow predictions are
    left out: they are the candidate's, not what was served.
    """
    registry.resolve(name, version)  # an unknown model or version is a 404 here
    labels = {
        (label.request_id, label.row_index): label
        for label in store.iter_labels(name, since=since, until=until, by="prediction_time")
        if version is None or label.model_version == version
    }
    rows: list[dict[str, Any]] = []
    for event in logged_events(store, name, since, until, version):
        label = labels.get((event.request_id, event.row_index))
        if label is None:
            continue
        row = _event_row(event)
        row["label"] = label.label
        row["label_time"] = label.label_time
        row["label_source"] = label.client_id
        row["label_revision"] = label.revision
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=list(WINDOW_COLUMNS))
    frame = pd.DataFrame(rows)
    features = [c for c in frame.columns if c not in WINDOW_COLUMNS]
    return frame[features + list(WINDOW_COLUMNS)]


def logged_events(
    store: Store, name: str, since: datetime | None, until: datetime | None, version: int | None,
    request_type: str | None = None,
) -> list[PredictionEvent]:
    query = EventQuery(
        model_name=name, model_version=version, since=since, until=until, request_type=request_type,
        limit=10_000,
    )
    found = store.iter_events(query)
    if request_type == "shadow":
        return list(found)
    return [e for e in found if e.request_type != "shadow"]


def _event_row(event: PredictionEvent) -> dict[str, Any]:
    clash = set(event.data or ()) & set(WINDOW_COLUMNS)
    if clash:
        raise InvalidInput(f"features {sorted(clash)} have the names of window columns; rename them")
    return {
        **(event.data or {}), "request_id": event.request_id, "row_index": event.row_index,
        "entity_id": event.entity_id, "timestamp": event.timestamp, "model_version": event.model_version,
        "request_type": event.request_type, "prediction": event.prediction[0] if event.prediction else None,
        "probability": event.probability, "runtime_ms": event.runtime_ms, "has_data": event.data is not None,
    }


# --- model selection: retrain, compare, promote ---------------------------------------------


class _RetrainFacts(TypedDict):
    """What a retraining records about its window, in the candidate's params and its result."""

    from_version: int
    since: str | None
    until: str | None
    rows_window: int
    rows_quarantined: int
    rows_released: int
    rows_reference: int
    rows_adversarial: int


@dataclass(frozen=True, kw_only=True)
class RetrainResult:
    model: str
    version: int
    from_version: int
    #: The window, as UTC ISO-8601 times (``None``: open-ended).
    since: str | None
    until: str | None
    #: Labelled predictions in the window whose inputs were logged.
    rows_window: int
    #: Window rows the screens set aside and training left out (released rows are not counted).
    rows_quarantined: int
    rows_reference: int
    #: Rows the candidate was fitted and measured on (kept window + reference + adversarial rows).
    rows_used: int
    screening: dict[str, Any]
    metrics: dict[str, Any]
    duration_ms: float
    #: Window rows the screens set aside that a person released: trained on.
    rows_released: int = 0
    #: Adversarial examples added to the training rows (``adversarial_share``; 0 when off).
    rows_adversarial: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def retrain_candidate(
    store: Store,
    registry: Registry,
    name: str,
    *,
    since: datetime | None,
    until: datetime | None,
    include_reference: bool = True,
    estimator: str | None = None,
    seed: int = 0,
    min_rows: int = 200,
    screens: ScreenSettings | None = None,
    adversarial_share: float = 0.0,
) -> RetrainResult:
    """Train a candidate on the labelled window (screened), register it as ``candidate``.

    The training table is the window's logged inputs with their labels as the
    target, plus the production version's reference sample when
    ``include_reference``. The window is screened first
    (:func:`loopwatch.application.quarantine.screen_for_retraining`, tuned by ``screens``):
    the rows set aside are quarantined and left out unless released. The
    candidate keeps production's task, categorical and nullable features, and
    estimator unless another is named.

    ``adversarial_share`` in (0, 0.5] turns on adversarial training (classifiers
    with numeric features only): after screening, that share of the training
    rows is attacked with :func:`loopwatch.models.attacks.boundary_attack`
    against the *production* pipeline, the attacker's current target and the
    only model there is before the candidate, and every flipped row is added
    with its true label (seeded by ``seed``). The holdout is split from the
    augmented table: its metrics are not comparable with a plain candidate's.
    """
    from loopwatch.application.quarantine import screen_for_retraining

    started = time.perf_counter()
    production = registry.resolve(name, "production")
    _check_retrainable(production, estimator)
    schema = production.schema
    _check_adversarial(adversarial_share, schema)
    window = labelled_window(store, registry, name, since=since, until=until)
    n_unlogged = int((~window["has_data"].astype(bool)).sum()) if len(window) else 0
    window = window[window["has_data"].astype(bool)] if len(window) else window
    # logged rows hold category labels and the reference sample the training table's types:
    # both in the recorded types, so the candidate's schema records the types production's does
    training = typed_frame(window.reindex(columns=schema.names), schema)
    training[schema.target] = window["label"].to_numpy() if len(window) else []
    reference = typed_frame(registry.reference_sample(name, production.version), schema)
    screened = screen_for_retraining(store, name, training, window, schema=schema, reference=reference,
                                     settings=screens)
    screening = screened.screening
    kept = training[screened.usable].copy()
    if screening.labels is not None:
        kept[schema.target] = screening.labels[screened.usable].tolist()
    if len(kept) < min_rows:
        raise InvalidInput(
            f"only {len(kept)} usable labelled rows from {_when(since, 'the start')} to {_when(until, 'now')}; "
            f"retraining needs at least {min_rows}"
            + (f" ({n_unlogged} more have no logged inputs: input logging was off)" if n_unlogged else ""),
            detail={"screening": screening.to_dict()},
        )
    n_reference = 0
    if include_reference:
        extra = reference.reindex(columns=[*schema.names, schema.target])
        n_reference = len(extra)
        kept = pd.concat([kept, extra], ignore_index=True)
    kept[schema.target] = kept[schema.target].infer_objects()
    adversarial = None
    if adversarial_share:  # quarantined rows are gone by now: they never seed an adversarial example
        from loopwatch.models.attacks import augment_with_adversarial

        pipeline = registry.load(name, production.version).pipeline
        augmented = augment_with_adversarial(kept, schema.target, pipeline, share=adversarial_share, seed=seed,
                                             schema=schema)
        adversarial = augmented.iloc[len(kept):].reset_index(drop=True)  # the added rows come last
    n_adversarial = 0 if adversarial is None else len(adversarial)
    chosen = estimator or production.estimator
    params = production.params.get("estimator_params") if chosen == production.estimator else None
    try:
        trained = train_model(
            kept.reset_index(drop=True),
            schema.target,
            task=schema.task,
            estimator=chosen,
            categorical=schema.categorical,
            nullable=[f.name for f in schema.features if f.nullable],
            seed=seed,
            estimator_params=params or None,
            training_only=adversarial,
        )
    except LoopwatchError:
        raise
    except (ValueError, TypeError) as exc:  # scikit-learn refusing the labelled data (one class left, say)
        raise InvalidInput(f"cannot train on the labelled window: {str(exc)[:300]}") from exc
    facts: _RetrainFacts = {
        "from_version": production.version, "since": None if since is None else utc_iso(since),
        "until": None if until is None else utc_iso(until), "rows_window": int(len(window)),
        "rows_quarantined": screened.n_left_out, "rows_released": screened.n_released, "rows_reference": n_reference,
        "rows_adversarial": n_adversarial,
    }
    trained = replace(trained, params={**trained.params, "retrained": {**facts, "screened_by": screening.screened_by}})
    version = registry.register(name, trained, alias="candidate")
    return RetrainResult(
        model=name, version=version.version, rows_used=int(len(kept)) + n_adversarial, screening=screening.to_dict(),
        metrics=dict(version.metrics), duration_ms=(time.perf_counter() - started) * 1000, **facts,
    )


def _check_retrainable(production: ModelVersion, estimator: str | None) -> None:
    """A monitor-only model has nothing loopwatch can retrain or gate; a pipeline fitted
    elsewhere is its owner's to refit (loopwatch cannot rebuild their feature engineering), but
    a candidate from loopwatch's own menu may still be trained against it when one is named."""
    refuse_monitor_only(production, "retrain (and no candidate could be gated against it)")
    if production.params.get("registered") and estimator is None:
        raise NotApplicable(
            f"model {echo(production.name)} version {production.version} was fitted outside loopwatch "
            f"({production.estimator}): loopwatch cannot refit it. Register your refitted model as the "
            "candidate (loopwatch register --alias candidate), or name an estimator of loopwatch's own "
            "to train one on the labelled window",
            detail={"not_applicable": "retraining", "estimator": production.estimator},
        )


def compare_on_window(
    store: Store,
    registry: Registry,
    name: str,
    *,
    since: datetime | None,
    until: datetime | None,
    candidate: int | str | None = None,
    production: int | str | None = None,
    metric: str | None = None,
    margin: float = 0.0,
    confidence: float = 0.95,
    latency_budget_ms: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> GateDecision:
    """Score production and the candidate on the same labelled rows of ``[since, until)``.

    The rows are the window's labelled, served (not shadow) predictions whose inputs
    were logged. The window must not overlap the one the candidate was retrained on:
    a model measured on its own training rows looks better than it is. Latencies are
    95th percentiles of request runtimes (``latency_source`` says whence):
    ``"shadow"``, the candidate's shadow runtimes against production's served ones
    in the window; else, with a latency budget, ``"offline"``, both timed here on
    one-row requests; else ``None``, production's served runtimes and no candidate
    latency.
    """
    prod = registry.resolve(name, production or "production")
    refuse_monitor_only(prod, "score in the promotion gate")  # the gate scores both models on the window
    cand = registry.resolve(name, candidate or "candidate")
    refuse_monitor_only(cand, "score in the promotion gate")
    if prod.version == cand.version:
        raise Conflict(f"the candidate and production are the same version ({prod.version})")
    _refuse_training_overlap(cand, since, until)
    metric = metric or ("accuracy" if prod.task == "classification" else "mae")
    window = labelled_window(store, registry, name, since=since, until=until)
    window = window[window["has_data"].astype(bool)].reset_index(drop=True) if len(window) else window
    if len(window) < 2:
        raise InvalidInput(f"fewer than two labelled predictions with logged inputs in the window of {echo(name)}")
    # each version reads its own features; a row counts only when both can score it
    inputs = window[[c for c in window.columns if c not in WINDOW_COLUMNS]]
    screened = [
        screen_training_data(inputs.reindex(columns=meta.schema.names).assign(__label=window["label"].to_numpy()),
                             label_column="__label", schema=meta.schema, settings=ScreenSettings(screens=()))
        for meta in (prod, cand)
    ]
    valid = screened[0].kept & screened[1].kept
    if valid.sum() < 2:
        raise InvalidInput("fewer than two labelled rows both versions can score")
    labels = screened[0].labels
    y = (labels if labels is not None else window["label"])[valid].tolist()
    rows = [_records(inputs.reindex(columns=meta.schema.names)[valid]) for meta in (prod, cand)]
    (pred_p, proba_p), (pred_c, proba_c) = (_score(registry, name, m, r) for m, r in zip((prod, cand), rows))
    if proba_p is not None and proba_c is not None:
        proba_c = _align_proba(proba_c, cand, prod)
    latency_p, latency_c, source = _latencies(store, registry, name, (prod, cand), since, until, rows, latency_budget_ms)
    decision = promotion_gate(
        y, pred_p, pred_c, metric=metric, margin=margin, confidence=confidence, n_boot=n_boot, seed=seed,
        latency_production_ms=latency_p, latency_candidate_ms=latency_c, latency_budget_ms=latency_budget_ms,
        proba_production=proba_p, proba_candidate=proba_c, classes=list(prod.schema.classes) or None,
    )
    return replace(
        decision, latency_source=source, production_version=prod.version, candidate_version=cand.version
    )


def promote_if_passed(
    store: Store,
    registry: Registry,
    name: str,
    *,
    since: datetime | None,
    until: datetime | None,
    **gate: Any,
) -> tuple[GateDecision, AliasChange | None]:
    """Run :func:`compare_on_window`; when the gate passes, production takes the candidate."""
    decision = compare_on_window(store, registry, name, since=since, until=until, **gate)
    if not decision.passed or decision.candidate_version is None:
        return decision, None
    change = registry.set_alias(name, "production", decision.candidate_version, reason="gate")
    return decision, change


def _check_adversarial(share: float, schema: FeatureSchema) -> None:
    if isinstance(share, bool) or not 0 <= share <= 0.5:  # NaN fails the comparison too
        raise InvalidInput(f"adversarial_share must lie in [0, 0.5], got {echo(share)}")
    if share and (schema.task != "classification" or not schema.numeric):
        raise InvalidInput("adversarial training needs a classifier with numeric features: the attack "
                           f"moves numeric features across a decision boundary ({schema.task} model here)")


def _refuse_training_overlap(candidate: ModelVersion, since: datetime | None, until: datetime | None) -> None:
    """Refuse a gate window that shares predictions with the candidate's training window.

    Scored on the rows it learned from, a candidate looks better than it is, so the gate
    would pass for the wrong reason. Refused rather than trimmed: a trimmed window would
    silently measure something other than what was asked for.
    """
    trained_on = candidate.params.get("retrained") if isinstance(candidate.params, dict) else None
    if not trained_on:
        return
    t_since = _parse(trained_on.get("since"))
    t_until = _parse(trained_on.get("until"))
    starts_before = t_until is None or since is None or since < t_until
    ends_after = t_since is None or until is None or until > t_since
    if not (starts_before and ends_after):
        return
    gate_window = f"{_when(since, 'the start')} to {_when(until, 'the end')}"
    training_window = f"{trained_on.get('since') or 'the start'} to {trained_on.get('until') or 'the end'}"
    if t_until is not None:
        fix = f"gate on the labelled predictions from {utc_iso(t_until)} on (since {utc_iso(t_until)} or later)"
    else:
        fix = ("retrain with an end (until T) that leaves later labelled predictions, "
               "then gate from T on (since T or later)")
    raise InvalidInput(
        f"the gate window ({gate_window}) overlaps the window version {candidate.version} was trained on "
        f"({training_window}): scored on rows it learned from, a candidate looks better than it is; {fix}",
        detail={"gate_window": {"since": _iso_or_none(since), "until": _iso_or_none(until)},
                "training_window": {"since": trained_on.get("since"), "until": trained_on.get("until")},
                "candidate_version": candidate.version},
    )


def _iso_or_none(moment: datetime | None) -> str | None:
    return None if moment is None else utc_iso(moment)


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _when(moment: datetime | None, otherwise: str) -> str:
    return otherwise if moment is None else utc_iso(moment)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _score(registry: Registry, name: str, meta: ModelVersion, rows: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    loaded = registry.load(name, meta.version)
    # logged rows passed this validation once: the same nulls are accepted again
    frame = validate_rows(meta.schema, rows, nullable=registry.settings(name).nullable, imputes=loaded.imputes).frame
    with np.errstate(over="ignore"):
        if meta.task == "classification" and hasattr(loaded.pipeline, "predict_proba"):
            proba = np.asarray(loaded.pipeline.predict_proba(frame))
            labels = np.asarray(loaded.pipeline.classes_)[proba.argmax(axis=1)]
            return labels.tolist(), proba
        return np.asarray(loaded.pipeline.predict(frame)).ravel().tolist(), None


def _align_proba(proba: np.ndarray, candidate: ModelVersion, production: ModelVersion) -> np.ndarray:
    """The candidate's probability columns in production's class order."""
    cand = [category_label(c) for c in candidate.schema.classes]
    prod = [category_label(c) for c in production.schema.classes]
    if sorted(cand) != sorted(prod):
        raise InvalidInput(
            f"the candidate's classes {cand[:10]} differ from production's {prod[:10]}; "
            "compare them with a label metric (accuracy, f1)"
        )
    return proba[:, [cand.index(c) for c in prod]]


def _latencies(
    store: Store, registry: Registry, name: str, versions: tuple[ModelVersion, ModelVersion],
    since: datetime | None, until: datetime | None, rows: list[list[dict[str, Any]]], budget: float | None,
) -> tuple[list[float] | None, list[float] | None, str | None]:
    prod, cand = versions
    served = _request_runtimes(logged_events(store, name, since, until, prod.version)) or None
    shadow = _request_runtimes(logged_events(store, name, since, until, cand.version, request_type="shadow"))
    if shadow:
        return served, shadow, "shadow"
    if budget is None:  # nothing to check: report what production served, time nothing
        return served, None, None
    timed = [_timed(registry, name, meta, part[:OFFLINE_TIMING_ROWS]) for meta, part in zip(versions, rows)]
    return timed[0], timed[1], "offline"


def _request_runtimes(events: Sequence[PredictionEvent]) -> list[float]:
    by_request = {e.request_id: e.runtime_ms for e in events}
    return list(by_request.values())


def _timed(registry: Registry, name: str, meta: ModelVersion, rows: list[dict[str, Any]]) -> list[float]:
    """Milliseconds of each one-row request: validation and prediction, as the service runs them."""
    _score(registry, name, meta, rows[:1])  # load and warm up outside the timing
    times = []
    for row in rows:
        started = time.perf_counter()
        _score(registry, name, meta, [row])
        times.append((time.perf_counter() - started) * 1000)
    return times
