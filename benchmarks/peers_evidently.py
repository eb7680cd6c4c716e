"""Evidently's DataDriftPreset on two Parquet files (run with benchmarks/.peers/evidently/bin/python).

Variants:

* ``default``: ``DataDriftPreset()`` with Evidently's own choice of test per
  column (Wasserstein distance, normed, for numeric columns of more than 1,000
  reference rows; KS below that). One statistic per column.
* ``ks`` / ``wasserstein``: the preset with ``method=`` forced, for a like-for-like
  single statistic.
* ``all5``: one Report holding five presets, ``method=`` ks, wasserstein,
  kl_div, jensenshannon and psi: the five statistics loopwatch computes.
* ``stattests``: no Report at all: Evidently's five registered stat-test
  functions called directly on each column (no plots, no metric graph): a
  lower bound for Evidently's computing cost, not its user-facing API.

``Report.run`` also builds the report's plotly widgets; Evidently 0.7.23 has
no switch to skip that, so it is part of the measured cost of every Report
variant (the ``stattests`` variant shows the cost without it).
"""

from __future__ import annotations

import warnings

import pandas as pd

import peers_common

VARIANTS = ["default", "ks", "wasserstein", "all5", "stattests"]
FIVE = ["ks", "wasserstein", "kl_div", "jensenshannon", "psi"]


def main() -> None:
    warnings.filterwarnings("ignore")
    import evidently
    from evidently import DataDefinition, Dataset, Report
    from evidently.legacy.calculations.stattests import get_stattest
    from evidently.legacy.core import ColumnType
    from evidently.presets import DataDriftPreset

    args = peers_common.parse_args(VARIANTS)

    def presets() -> list:
        if args.variant == "default":
            return [DataDriftPreset()]
        if args.variant in ("ks", "wasserstein"):
            return [DataDriftPreset(method=args.variant)]
        return [DataDriftPreset(method=m) for m in FIVE]

    def dataset(frame: pd.DataFrame):
        definition = DataDefinition(numerical_columns=list(frame.columns))
        return Dataset.from_pandas(frame, data_definition=definition)

    if args.variant == "stattests":

        def prepare(path: str):
            return peers_common.read_frame(path)

        def compute(reference: pd.DataFrame, path: str):
            current = peers_common.read_frame(path)
            out = {}
            for column in reference.columns:
                for name in FIVE:
                    test = get_stattest(reference[column], current[column], ColumnType.Numerical, name)
                    result = test(reference[column], current[column], ColumnType.Numerical, None)
                    out[(column, name)] = float(result.drift_score)
            return out

        def summarise(result) -> dict:
            first = sorted({c for c, _ in result})[:3]
            return {f"{c}/{m}": result[(c, m)] for c in first for m in FIVE}

    else:

        def prepare(path: str):
            return dataset(peers_common.read_frame(path))

        def compute(reference, path: str):
            return Report(presets()).run(dataset(peers_common.read_frame(path)), reference)

        def summarise(snapshot) -> dict:
            values = {}
            for metric in snapshot.dict()["metrics"]:
                name = metric["metric_name"]
                if name.startswith("ValueDrift(column=f0") and name[len("ValueDrift(column="):].startswith(
                    ("f00,", "f01,", "f02,")
                ):
                    values[name] = metric["value"]
                elif name.startswith("DriftedColumnsCount"):
                    values[name] = metric["value"]
            return values

    peers_common.run(
        peer="evidently",
        version=evidently.__version__,
        args=args,
        prepare=prepare,
        compute=compute,
        summarise=summarise,
        notes="Evidently has no reusable reference profile: 'precomputed' = reference already read "
        "into an Evidently Dataset before the timer.",
    )


if __name__ == "__main__":
    main()
