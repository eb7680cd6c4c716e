"""NannyML's CBPE and DLE on its own synthetic datasets (run with benchmarks/.peers/nannyml/bin/python).

Called by benchmarks/performance_quality.py. It exports the datasets NannyML
ships (car loan: a binary classifier's reference with labels and its analysis
period, whose labels come separately; car price: the same for a regressor)
to Parquet, so that loopwatch reads exactly the same rows, then fits
NannyML's estimators on the reference and estimates the analysis period in
chunks, as NannyML's quickstart does:

* ``CBPE(problem_type="classification_binary", metrics=["roc_auc",
  "accuracy", "f1"], chunk_size=5000)`` on the car loan data;
* ``DLE(metrics=["mae", "rmse"], chunk_size=6000, tune_hyperparameters=False)``
  on the car price data, with every feature column.

Writes ``<out>/nannyml_performance.json``: per chunk, the rows it spans, the
estimate, NannyML's sampling error and confidence bounds (estimate +- 3
sampling errors, its default), and NannyML's realized value; plus wall and
process CPU seconds of fit + estimate, once per repeat (the estimates are
deterministic; only the times vary).

Usage: ``python peers_nannyml_performance.py OUT_DIR [REPEATS]``
"""

from __future__ import annotations

import json
import os
import platform
import sys
import warnings
from pathlib import Path

from peers_common import timed_repeats  # noqa: E402

os.environ.setdefault("NML_DISABLE_USAGE_LOGGING", "1")

CLASSIFICATION_METRICS = ["roc_auc", "accuracy", "f1"]
REGRESSION_METRICS = ["mae", "rmse"]
CAR_LOAN_CHUNK = 5000
CAR_PRICE_CHUNK = 6000


def _chunks(result, metrics: list[str]) -> list[dict]:
    df = result.filter(period="analysis").to_df()
    rows = []
    for i in range(len(df)):
        row = {"start": int(df[("chunk", "start_index")].iloc[i]), "end": int(df[("chunk", "end_index")].iloc[i])}
        for metric in metrics:
            row[metric] = {
                key: float(df[(metric, column)].iloc[i])
                for key, column in (("value", "value"), ("sampling_error", "sampling_error"),
                                    ("lower", "lower_confidence_boundary"), ("upper", "upper_confidence_boundary"),
                                    ("realized", "realized"))
            }
        rows.append(row)
    return rows


def main() -> None:
    warnings.filterwarnings("ignore")
    import nannyml as nml

    out = Path(sys.argv[1])
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    out.mkdir(parents=True, exist_ok=True)

    reference, analysis, targets = nml.load_synthetic_car_loan_dataset()
    analysis = analysis.merge(targets, on="id", how="left")
    reference.to_parquet(out / "car_loan_reference.parquet", index=False)
    analysis.to_parquet(out / "car_loan_analysis.parquet", index=False)
    def cbpe():
        estimator = nml.CBPE(
            y_pred_proba="y_pred_proba", y_pred="y_pred", y_true="repaid", timestamp_column_name="timestamp",
            metrics=CLASSIFICATION_METRICS, chunk_size=CAR_LOAN_CHUNK, problem_type="classification_binary",
        )
        return estimator.fit(reference).estimate(analysis)

    result, wall, cpu = timed_repeats(cbpe, repeats)
    car_loan = {"chunks": _chunks(result, CLASSIFICATION_METRICS), "seconds": wall, "cpu_seconds": cpu,
                "rows": {"reference": len(reference), "analysis": len(analysis)}}

    reference, analysis, targets = nml.load_synthetic_car_price_dataset()
    analysis = analysis.merge(targets, on="id", how="left")
    reference.to_parquet(out / "car_price_reference.parquet", index=False)
    analysis.to_parquet(out / "car_price_analysis.parquet", index=False)
    features = [c for c in reference.columns if c not in ("id", "y_true", "y_pred", "timestamp")]
    def dle():
        estimator = nml.DLE(
            feature_column_names=features, y_pred="y_pred", y_true="y_true", timestamp_column_name="timestamp",
            metrics=REGRESSION_METRICS, chunk_size=CAR_PRICE_CHUNK, tune_hyperparameters=False,
        )
        return estimator.fit(reference).estimate(analysis)

    result, wall, cpu = timed_repeats(dle, repeats)
    car_price = {"chunks": _chunks(result, REGRESSION_METRICS), "seconds": wall, "cpu_seconds": cpu,
                 "features": features, "rows": {"reference": len(reference), "analysis": len(analysis)}}

    report = {
        "nannyml": nml.__version__,
        "python": platform.python_version(),
        "car_loan": car_loan,
        "car_price": car_price,
    }
    (out / "nannyml_performance.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({"ok": True, "nannyml": nml.__version__}))


if __name__ == "__main__":
    main()
