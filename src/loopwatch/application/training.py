"""Train and register a version from a table, its training rows screened for poisoning first.

What ``loopwatch train``, ``POST /v1/models/{name}/train`` and ``Workspace.train`` do. The table is
screened as a retraining window is (:func:`loopwatch.poisoning.screening.screen_training_data`):
labels at odds with their neighbours and a cross-validated model, exact feature
patterns that come with one label (backdoor triggers) and, once the model has a
production version, rows far from that version's reference sample. The table is
split first (the seeded holdout of :func:`loopwatch.models.training.split_positions`)
and only the training part is screened: the holdout is the same with and without
screening, so the metrics of both can be compared. The rows set aside are left
out of training and listed, with their reasons and their row numbers in the table,
in the answer and in the version's ``params["screening"]`` (with ``n_holdout``, the
rows measured on and not screened). Training again with screening off
(``--no-screen``, ``screen=false``, ``screen=False``) releases them.

A table sent for training has no feedback source and no served predictions, so
the source screen does not run; labels that arrive as feedback are screened at
retraining, where they have both. Library code with no edge of its own, like
:mod:`loopwatch.application.retraining`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from loopwatch.errors import NotFound
from loopwatch.features.schema import infer_schema
from loopwatch.poisoning.screening import ScreenSettings, screen_training_data
from loopwatch.features.schema import Task
from loopwatch.models.training import split_positions, train_model
from loopwatch.records import ModelVersion
from loopwatch.registry import Registry


@dataclass(frozen=True)
class TableTraining:
    version: ModelVersion
    #: Screening and training, in milliseconds.
    duration_ms: float
    #: What the screens set aside (``None`` when screening was off).
    screening: dict[str, Any] | None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version.to_dict(), "duration_ms": self.duration_ms, "screening": self.screening}


def train_from_table(
    registry: Registry,
    name: str,
    frame: pd.DataFrame,
    *,
    target: str,
    task: Task | None = None,
    estimator: str | None = None,
    categorical: Sequence[str] = (),
    test_size: float = 0.2,
    seed: int = 0,
    alias: str | None = None,
    estimator_params: Mapping[str, Any] | None = None,
    client_id: str | None = None,
    screen: bool = True,
    screens: ScreenSettings | None = None,
) -> TableTraining:
    """Screen ``frame`` (unless ``screen`` is off), train on the rows kept, register the version."""
    registry.check_name(name)  # before the work, not after it
    started = time.perf_counter()
    screening = None
    left_out: list[int] | None = None  # None: not screened, the reference sample may hold any row
    frame = frame.reset_index(drop=True)
    if screen:
        schema = infer_schema(frame, target, task=task, categorical=categorical)
        training_rows, holdout_rows = split_positions(frame[target].to_numpy(), schema.task, target=target,
                                                      test_size=test_size, seed=seed)
        training_rows = np.sort(training_rows)
        part = frame.iloc[training_rows].reset_index(drop=True)
        result = screen_training_data(part, label_column=target, schema=schema,
                                      reference=_reference(registry, name, schema.names, target), settings=screens)
        # reported by row numbers of the whole table
        screening = result.to_dict()
        screening["quarantined"] = [{**row, "index": int(training_rows[row["index"]])}
                                    for row in screening["quarantined"]]
        screening["n_holdout"] = int(holdout_rows.size)
        left_out = training_rows[~result.kept].tolist()
    trained = train_model(
        frame, target, task=task, estimator=estimator, categorical=categorical, test_size=test_size, seed=seed,
        estimator_params=estimator_params, left_out=left_out,
    )
    if screening is not None:
        trained = replace(trained, params={**trained.params, "screening": screening})
    version = registry.register(name, trained, client_id=client_id, alias=alias)
    return TableTraining(version=version, duration_ms=(time.perf_counter() - started) * 1000, screening=screening)


def _reference(registry: Registry, name: str, features: Sequence[str], target: str) -> pd.DataFrame | None:
    """The production version's reference sample, when it has the table's features and target:
    what a new version's rows are compared with (a first version has nothing to compare with)."""
    try:
        sample = registry.reference_sample(name, "production")
    except NotFound:
        return None
    columns = [*features, target]
    return sample[columns] if set(columns) <= set(sample.columns) else None
