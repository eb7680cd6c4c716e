"""The poisoning screens over a store: quarantine training rows, list and release them,
and watch feedback sources as their labels arrive.

- :func:`screen_for_retraining` screens a labelled window before a retrain
  (:mod:`loopwatch.poisoning.screening`), stores what it sets aside, and keeps
  the rows a person released for the label they have;
- :func:`list_quarantine` and :func:`release` serve ``GET`` and ``POST
  /v1/models/{name}/quarantine[/release]`` and ``loopwatch quarantine``;
- :func:`screen_feedback` tests the feedback sources of the labels that
  arrived in a period (:mod:`loopwatch.poisoning.sources`), so a skewed source
  is named before any retraining reads its labels.

Like :mod:`loopwatch.application.retraining`, this is library code with no edge of its
own: the CLI, the service, the loop engine and notebooks call it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import InvalidInput, NotFound, echo, listed
from loopwatch.features.schema import FeatureSchema
from loopwatch.poisoning.screening import ScreenSettings, ScreeningResult, screen_training_data
from loopwatch.poisoning.records import QuarantineEntry, is_releasable, parse_entry_id, storable_reasons
from loopwatch.poisoning.sources import SourceEvidence, source_skew_test
from loopwatch.registry import Registry
from loopwatch.stores.base import EventQuery, Store

#: Most ids one release may name.
MAX_RELEASE_IDS = 10_000


@dataclass(frozen=True)
class ScreenedWindow:
    screening: ScreeningResult
    #: True for the rows training may use: kept by the screens, or released.
    usable: np.ndarray
    #: Rows left out (quarantined and not released).
    n_left_out: int
    #: Quarantined rows kept because they were released for their current label.
    n_released: int


def screen_for_retraining(
    store: Store,
    name: str,
    training: pd.DataFrame,
    window: pd.DataFrame,
    *,
    schema: FeatureSchema,
    reference: pd.DataFrame | None,
    settings: ScreenSettings | None = None,
    now: datetime | None = None,
) -> ScreenedWindow:
    """Screen the training rows of a labelled window, quarantine what is set aside.

    ``training`` holds the features and the label (column ``schema.target``),
    ``window`` the matching rows of :func:`loopwatch.application.retraining.labelled_window`
    (request id, row index, label source and revision, served prediction).
    """
    moment = now or datetime.now(timezone.utc)
    n = len(training)
    screening = screen_training_data(
        training, label_column=schema.target, schema=schema, reference=reference,
        sources=window["label_source"].tolist() if n else [],
        predictions=window["prediction"].tolist() if n else None, settings=settings,
    )
    usable = screening.kept.copy()
    if not screening.quarantined:
        return ScreenedWindow(screening, usable, 0, 0)
    position = {index: i for i, index in enumerate(training.index)}
    entries = []
    for index, reasons in screening.quarantined:
        row = window.iloc[position[index]]
        entries.append(QuarantineEntry(
            model_name=name, request_id=str(row["request_id"]), row_index=int(row["row_index"]),
            label_revision=int(row["label_revision"]), reasons=storable_reasons(reasons),
            source=None if pd.isna(row["label_source"]) else str(row["label_source"]), quarantined_at=moment,
        ))
    store.quarantine_rows(entries)
    released = {(e.request_id, e.row_index, e.label_revision)
                for e in store.list_quarantine(name, released=True, limit=None)}
    n_released = 0
    for (index, reasons), entry in zip(screening.quarantined, entries):
        if is_releasable(reasons) and (entry.request_id, entry.row_index, entry.label_revision) in released:
            usable[position[index]] = True
            n_released += 1
    return ScreenedWindow(screening, usable, len(entries) - n_released, n_released)


def list_quarantine(
    store: Store,
    registry: Registry,
    name: str,
    *,
    released: bool | None = False,
    limit: int = 1000,
    offset: int = 0,
) -> dict[str, Any]:
    """A page of a model's quarantined rows (``released``: ``False`` the held ones, ``True`` the
    released ones, ``None`` both) with the counts of both."""
    registry.settings(name)  # an unknown model is a 404
    entries = store.list_quarantine(name, released=released, limit=limit, offset=offset)
    return {
        "model": name, "counts": store.count_quarantine(name), "limit": limit, "offset": offset,
        "rows": [entry.to_dict() for entry in entries],
    }


def release(
    store: Store,
    registry: Registry,
    name: str,
    ids: Sequence[str],
    *,
    by: str | None = None,
    at: datetime | None = None,
) -> list[QuarantineEntry]:
    """Release quarantined rows (ids ``REQUEST_ID:ROW_INDEX``), all or none.

    An unknown id is a NotFound; a row set aside by a certain check (a label
    that is not a class, a value the schema refuses) cannot be trained on and
    is refused (InvalidInput). Released rows go back into the next retraining
    for as long as their label is not corrected.
    """
    registry.settings(name)
    if not ids:
        raise InvalidInput("name at least one quarantined row to release")
    if len(ids) > MAX_RELEASE_IDS:
        raise InvalidInput(f"at most {MAX_RELEASE_IDS} rows per release")
    keys = [parse_entry_id(i) for i in ids]
    known = {(e.request_id, e.row_index): e for e in store.list_quarantine(name, limit=None)}
    missing = [i for i, key in zip(ids, keys) if key not in known]
    if missing:
        raise NotFound(f"{len(missing)} rows are not quarantined for model {echo(name)}: {listed(missing)}",
                       detail={"missing": missing[:100]})
    certain = [i for i, key in zip(ids, keys) if not known[key].releasable]
    if certain:
        raise InvalidInput(
            f"{len(certain)} rows failed a certain check (their label or features cannot be trained on) "
            f"and cannot be released: {', '.join(certain[:10])}", detail={"not_releasable": certain[:100]},
        )
    return store.release_quarantine(name, keys, by=by, at=at or datetime.now(timezone.utc))


def screen_feedback(
    store: Store,
    name: str,
    *,
    since: datetime | None,
    until: datetime | None,
    alpha: float = 0.01,
    min_labels: int = 30,
) -> list[SourceEvidence]:
    """The feedback sources whose labels of ``[since, until)`` (label time) skew, with evidence.

    Each source with at least ``min_labels`` labels in the period is compared
    with all the others (:func:`loopwatch.poisoning.sources.source_skew_test`):
    its labels against the predictions the model served for the same rows.
    Returns the suspect sources, most suspect first; an empty list when no
    source stands out or fewer than two sources sent labels.
    """
    labels = list(store.iter_labels(name, since=since, until=until, by="label_time"))
    if len({label.client_id for label in labels}) < 2:
        return []
    served = _served_predictions(store, name, labels)
    evidence = source_skew_test(
        [label.label for label in labels], [label.client_id for label in labels],
        [served.get((label.request_id, label.row_index)) for label in labels], alpha=alpha, min_labels=min_labels,
    )
    return [e for e in evidence if e.suspect]


def _served_predictions(store: Store, name: str, labels: Sequence[Any]) -> dict[tuple[str, int], Any]:
    """The first output the model served for each labelled row."""
    wanted = {(label.request_id, label.row_index) for label in labels}
    first = min(label.prediction_time for label in labels)
    last = max(label.prediction_time for label in labels) + timedelta(microseconds=1)
    out: dict[tuple[str, int], Any] = {}
    for event in store.iter_events(EventQuery(model_name=name, since=first, until=last, limit=10_000)):
        key = (event.request_id, event.row_index)
        if key in wanted and event.request_type != "shadow" and event.prediction:
            out[key] = event.prediction[0]
    return out
