"""Files the demo leaves next to its database, so that the commands of the README and the
docs can be tried on the demo's world as written (``tests/test_docs_commands.py`` runs them).

- ``customers.csv``: the table version 1 was trained on (the features and ``churned``);
- ``new_customers.csv``: customers nobody has scored yet (a ``customer_id`` and the features);
- ``labels.csv``: the outcomes that arrive after the replayed period (``entity_id``, ``label``,
  ``label_time``): the demo's last two weeks of predictions get labelled only when it is loaded;
- ``revenue.csv``: the daily revenue the demo sent, total and per country (loading it again
  changes nothing: an observation sent twice is stored once);
- ``this_week.csv``: the inputs scored in the period's last seven days.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import pandas as pd

from loopwatch.records.jsonutil import utc_iso

#: Customers in ``new_customers.csv``.
NEW_CUSTOMERS = 200
#: The random stream of the new customers (the simulator's own streams use small purposes).
NEW_CUSTOMERS_STREAM = 9_001
#: Days at the end of the period whose inputs go into ``this_week.csv``.
RECENT_DAYS = 7


def write_demo_files(
    folder: Path,
    *,
    scenario: Any,
    training: pd.DataFrame,
    revenue: Sequence[Any],
    recent_rows: Sequence[dict[str, Any]],
) -> dict[str, str]:
    """Write the files into ``folder``; returns each file's name and path."""
    from loopwatch.simulate import FEATURES, sample_customers

    paths = {name: folder / name for name in
             ("customers.csv", "new_customers.csv", "labels.csv", "revenue.csv", "this_week.csv")}
    training.to_csv(paths["customers.csv"], index=False)
    fresh = sample_customers(np.random.default_rng([scenario.seed, NEW_CUSTOMERS_STREAM]), n=NEW_CUSTOMERS)
    fresh.insert(0, "customer_id", [f"new-{i:04d}" for i in range(1, len(fresh) + 1)])
    fresh[["customer_id", *FEATURES]].to_csv(paths["new_customers.csv"], index=False)
    _write(paths["labels.csv"], ("entity_id", "label", "label_time"),
           ((r.entity_id, r.label, utc_iso(r.label_time)) for r in scenario.trailing_feedback()))
    _write(paths["revenue.csv"], ("name", "timestamp", "value", "segment"),
           ((m.name, utc_iso(m.timestamp), m.value, m.segment or "") for m in revenue))
    pd.DataFrame.from_records(list(recent_rows), columns=list(FEATURES)).to_csv(paths["this_week.csv"], index=False)
    return {name: str(path) for name, path in paths.items()}


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
