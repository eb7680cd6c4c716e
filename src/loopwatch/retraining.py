"""Close the loops to data collection and model selection, over a store and its registry.

- :func:`labelling_queue` chooses which unlabelled predictions to send for
  labelling (:mod:`loopwatch.loops.labelling` ranks them).
- :func:`retrain_candidate` trains a candidate on the recent labelled window,
  screened first (:mod:`loopwatch.loops.screening`), and registers it as the
  ``candidate``.
- :func:`compare_on_window` scores production and the candidate on the same
  labelled rows and asks the gate (:mod:`loopwatch.loops.gate`);
  :func:`promote_if_passed` promotes when it passes.

Like :mod:`loopwatch.workspace`, this is library code with no edge of its own:
the CLI, the service and notebooks call it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import Conflict, InvalidInput, LoopwatchError, NotFound
from loopwatch.features import validate_rows
from loopwatch.features.schema import category_label
from loopwatch.loops.gate import GateDecision, promotion_gate
from loopwatch.loops.labelling import (
    QueueItem,
    novelty_percentiles,
    over_represented_bins,
    over_represented_categories,
    select_for_labelling,
    uncertainty_from_probabilities,
)
from loopwatch.loops.screening import screen_training_data
from loopwatch.models.training import train_model
from loopwatch.poisoning.compose import ScreenSettings
from loopwatch.records import AliasChange, ModelVersion, PredictionEvent
from loopwatch.records.jsonutil import utc_iso
from loopwatch.registry import Registry
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
    store: Store,
    registry: Registry,
    name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
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
    for event in _events(store, name, since, until, version):
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


def _events(
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


# --- data collection: the labelling queue ----------------------------------------------


def labelling_candidates(
    store: Store,
    registry: Registry,
    name: str,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> pd.DataFrame:
    """Unlabelled predictions of ``[since, until)`` with their informativeness signals.

    Columns: ``request_id``, ``row_index``, ``entity_id``, ``timestamp``,
    ``model_version``, ``uncertainty`` (from the probabilities; 0 for
    regression), ``novelty`` (the outlier score's percentile among the
    reference's held-out rows) and ``drifted_segment``. Rows whose inputs were
    not logged get novelty 0 and no segment.
    """
    registry.resolve(name)
    labelled = {(lab.request_id, lab.row_index) for lab in store.iter_labels(name, since=since, until=until,
                                                                             by="prediction_time")}
    events = [e for e in _events(store, name, since, until, None) if (e.request_id, e.row_index) not in labelled]
    columns = ["request_id", "row_index", "entity_id", "timestamp", "model_version", "uncertainty", "novelty",
               "drifted_segment"]
    if not events:
        return pd.DataFrame(columns=columns)
    parts = []
    for number in sorted({e.model_version for e in events}):
        group = [e for e in events if e.model_version == number]
        meta = registry.resolve(name, number)
        frame = pd.DataFrame({
            "request_id": [e.request_id for e in group],
            "row_index": [e.row_index for e in group],
            "entity_id": [e.entity_id for e in group],
            "timestamp": [e.timestamp for e in group],
            "model_version": number,
            "uncertainty": _uncertainty(group),
            "novelty": 0.0,
            "drifted_segment": False,
        })
        with_data = np.array([e.data is not None for e in group])
        if with_data.any():
            inputs = pd.DataFrame([e.data for e in group if e.data is not None], columns=meta.schema.names)
            novelty, drifted = _novelty_and_segments(registry, name, number, inputs)
            frame.loc[with_data, "novelty"] = novelty
            frame.loc[with_data, "drifted_segment"] = drifted
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)[columns]


def labelling_queue(
    store: Store,
    registry: Registry,
    name: str,
    *,
    budget: int,
    since: datetime | None = None,
    until: datetime | None = None,
    random_share: float = 0.2,
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
) -> list[QueueItem]:
    """The predictions of ``[since, until)`` to label next; see :func:`select_for_labelling`."""
    candidates = labelling_candidates(store, registry, name, since=since, until=until)
    return select_for_labelling(candidates, budget=budget, random_share=random_share, seed=seed, weights=weights)


def _uncertainty(events: Sequence[PredictionEvent]) -> np.ndarray:
    out = np.zeros(len(events))
    with_proba = [i for i, e in enumerate(events) if e.probability is not None and len(e.probability) >= 2]
    if with_proba:
        out[with_proba] = uncertainty_from_probabilities([events[i].probability for i in with_proba])
    return out


def _novelty_and_segments(
    registry: Registry, name: str, version: int, inputs: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    from loopwatch.drift import compare

    try:
        profile = registry.profile(name, version)
    except NotFound:  # a version registered without a profile: no novelty, no segments
        return np.zeros(len(inputs)), np.zeros(len(inputs), dtype=bool)
    novelty = np.zeros(len(inputs))
    joint = profile.joint
    if joint is not None and joint.detectors:
        detector = joint.detectors.get("isolation_forest") or next(iter(joint.detectors.values()))
        novelty = novelty_percentiles(
            detector.score_samples(joint.pca.transform(joint.encoder.transform(inputs))),
            detector.score_samples(joint.pca.transform(joint.sample)),
        )
    drifted = np.zeros(len(inputs), dtype=bool)
    reference = profile.univariate
    for feature in compare(profile, inputs[profile.features], multivariate=False, outliers=False).drifted_features:
        if feature in reference.numeric:
            drifted |= over_represented_bins(inputs[feature], reference.edges[feature], reference.bins[feature])
        else:
            labels = [None if v is None or v != v else category_label(v) for v in inputs[feature]]
            drifted |= over_represented_categories(labels, reference.categorical[feature].counts)
    return novelty, drifted


# --- model selection: retrain, compare, promote ---------------------------------------------


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
    #: Rows the candidate was fitted and measured on (kept window rows + reference rows).
    rows_used: int
    screening: dict[str, Any]
    metrics: dict[str, Any]
    duration_ms: float
    #: Window rows the screens set aside that a person released: trained on.
    rows_released: int = 0

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
) -> RetrainResult:
    """Train a candidate on the labelled window (screened), register it as ``candidate``.

    The training table is the window's logged inputs with their labels as the
    target, plus the production version's reference sample when
    ``include_reference``. The window is screened first
    (:func:`loopwatch.quarantine.screen_for_retraining`, tuned by ``screens``):
    the rows set aside are quarantined and left out unless released. The
    candidate keeps production's task, categorical and nullable features, and
    estimator unless another is named.
    """
    from loopwatch.quarantine import screen_for_retraining

    started = time.perf_counter()
    production = registry.resolve(name, "production")
    schema = production.schema
    window = labelled_window(store, registry, name, since=since, until=until)
    n_unlogged = int((~window["has_data"].astype(bool)).sum()) if len(window) else 0
    window = window[window["has_data"].astype(bool)] if len(window) else window
    training = window.reindex(columns=schema.names).copy()
    training[schema.target] = window["label"].to_numpy() if len(window) else []
    reference = registry.reference_sample(name, production.version)
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
    chosen = estimator or production.estimator
    params = production.params.get("estimator_params") if chosen == production.estimator else None
    try:
        trained = train_model(
            kept.reset_index(drop=True),
            schema.target,
            task=schema.task,  # type: ignore[arg-type]
            estimator=chosen,
            categorical=[f for f in schema.categorical if pd.api.types.is_numeric_dtype(kept[f])],
            nullable=[f.name for f in schema.features if f.nullable],
            seed=seed,
            estimator_params=params or None,
        )
    except LoopwatchError:
        raise
    except (ValueError, TypeError) as exc:  # scikit-learn refusing the labelled data (one class left, say)
        raise InvalidInput(f"cannot train on the labelled window: {str(exc)[:300]}") from exc
    facts = {
        "from_version": production.version, "since": None if since is None else utc_iso(since),
        "until": None if until is None else utc_iso(until), "rows_window": int(len(window)),
        "rows_quarantined": screened.n_left_out, "rows_released": screened.n_released, "rows_reference": n_reference,
    }
    trained = replace(trained, params={**trained.params, "retrained": {**facts, "screened_by": screening.screened_by}})
    version = registry.register(name, trained, alias="candidate")
    return RetrainResult(
        model=name, version=version.version, rows_used=int(len(kept)), screening=screening.to_dict(),
        metrics=dict(version.metrics), duration_ms=(time.perf_counter() - started) * 1000, **facts,
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
    cand = registry.resolve(name, candidate or "candidate")
    if prod.version == cand.version:
        raise Conflict(f"the candidate and production are the same version ({prod.version})")
    _refuse_training_overlap(cand, since, until)
    metric = metric or ("accuracy" if prod.task == "classification" else "mae")
    window = labelled_window(store, registry, name, since=since, until=until)
    window = window[window["has_data"].astype(bool)].reset_index(drop=True) if len(window) else window
    if len(window) < 2:
        raise InvalidInput(f"fewer than two labelled predictions with logged inputs in the window of {name!r}")
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


def _refuse_training_overlap(candidate: ModelVersion, since: datetime | None, until: datetime | None) -> None:
    trained_on = candidate.params.get("retrained") if isinstance(candidate.params, dict) else None
    if not trained_on:
        return
    t_since = _parse(trained_on.get("since"))
    t_until = _parse(trained_on.get("until"))
    starts_before = t_until is None or since is None or since < t_until
    ends_after = t_since is None or until is None or until > t_since
    if starts_before and ends_after:
        raise InvalidInput(
            f"the gate window overlaps the window version {candidate.version} was trained on "
            f"({trained_on.get('since') or 'the start'} to {trained_on.get('until') or 'the end'}); "
            "compare on later labelled predictions",
        )


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value.replace("Z", "+00:00"))


def _when(moment: datetime | None, otherwise: str) -> str:
    return otherwise if moment is None else utc_iso(moment)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")  # type: ignore[no-any-return]


def _score(registry: Registry, name: str, meta: ModelVersion, rows: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    loaded = registry.load(name, meta.version)
    frame = validate_rows(meta.schema, rows).frame
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
    served = _request_runtimes(_events(store, name, since, until, prod.version)) or None
    shadow = _request_runtimes(_events(store, name, since, until, cand.version, request_type="shadow"))
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
