"""Close the loop to data collection: which unlabelled predictions to send for labelling.

:func:`labelling_candidates` gathers each unlabelled prediction's informativeness
signals (uncertainty, novelty against the training data, whether it falls where
the inputs drifted); :func:`labelling_queue` hands them to the pure ranking of
:mod:`loopwatch.loops.labelling`. Library code with no edge of its own, like
:mod:`loopwatch.application.retraining`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import NotFound
from loopwatch.features.frames import labels_of, model_frame
from loopwatch.loops.labelling import (
    QueueItem, novelty_percentiles, over_represented_bins, over_represented_categories, select_for_labelling,
    uncertainty_from_probabilities,
)
from loopwatch.records import PredictionEvent
from loopwatch.registry import Registry
from loopwatch.application.retraining import logged_events
from loopwatch.stores.base import Store



def labelling_candidates(
    store: Store, registry: Registry, name: str, *, since: datetime | None = None, until: datetime | None = None,
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
    events = [e for e in logged_events(store, name, since, until, None) if (e.request_id, e.row_index) not in labelled]
    columns = ["request_id", "row_index", "entity_id", "timestamp", "model_version", "uncertainty", "novelty",
               "drifted_segment"]
    if not events:
        return pd.DataFrame(columns=columns)
    parts = []
    for number in sorted({e.model_version for e in events}):
        group = [e for e in events if e.model_version == number]
        meta = registry.resolve(name, number)
        frame = pd.DataFrame(
            [(e.request_id, e.row_index, e.entity_id, e.timestamp) for e in group], columns=columns[:4]
        ).assign(model_version=number, uncertainty=_uncertainty(group), novelty=0.0, drifted_segment=False)
        with_data = np.array([e.data is not None for e in group])
        if with_data.any():
            inputs = model_frame(pd.DataFrame([e.data for e in group if e.data is not None],
                                              columns=meta.schema.names), meta.schema)
            novelty, drifted = _novelty_and_segments(registry, name, number, inputs)
            frame.loc[with_data, "novelty"] = novelty
            frame.loc[with_data, "drifted_segment"] = drifted
        parts.append(frame)
    return pd.concat(parts, ignore_index=True)[columns]


def labelling_queue(
    store: Store, registry: Registry, name: str, *, budget: int, since: datetime | None = None,
    until: datetime | None = None, random_share: float = 0.2, seed: int = 0, weights: Mapping[str, float] | None = None,
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
            drifted |= over_represented_categories(labels_of(inputs[feature]), reference.categorical[feature].counts)
    return novelty, drifted
