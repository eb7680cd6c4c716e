"""Models fitted or served outside loopwatch, registered through the library, on real flights.

The LightGBM classifier is fitted here, outside loopwatch, on January flights (integer-coded
categories as plain int features). Its version is measured, profiled and calibrated by the
model itself; a monitor-only version built from the same model's recorded outputs must agree
with it, and both agree with scikit-learn's metrics computed independently.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as m

from loopwatch.errors import InvalidInput, NotApplicable, NotFound
from loopwatch.performance.reference import fit_estimator
from tests import realdata

FEATURES = ["carrier", "origin", "dest", "weekday", "sched_hour", "distance", "air_time"]
LGBM_TYPES = ["lightgbm.basic.Booster", "lightgbm.sklearn.LGBMClassifier"]


@pytest.fixture(scope="module")
def january() -> pd.DataFrame:
    frame = realdata.flights()
    return frame[frame["time"] < "2013-02-01"].drop(columns="time").sample(9_000, random_state=3)


@pytest.fixture(scope="module")
def model(january: pd.DataFrame):  # type: ignore[no-untyped-def]
    from lightgbm import LGBMClassifier

    fit = january.iloc[:4_000]
    return LGBMClassifier(n_estimators=40, num_leaves=15, random_state=0, n_jobs=1, verbose=-1).fit(
        fit[FEATURES], fit["late"])


def with_outputs(model, frame: pd.DataFrame) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    proba = model.predict_proba(frame[FEATURES])
    return frame.assign(pred=model.classes_[proba.argmax(axis=1)], proba_0=proba[:, 0], proba_1=proba[:, 1])


def test_untrusted_types_are_refused_by_name_and_nothing_is_stored(workspace, january, model) -> None:
    with pytest.raises(InvalidInput) as refused:
        workspace.register("late", model, reference=january.iloc[:4_000], target="late")
    assert refused.value.detail["untrusted_types"] == LGBM_TYPES
    assert "trust=" in refused.value.message
    with pytest.raises(NotFound):
        workspace.registry.resolve("late")


def test_a_fitted_lightgbm_is_measured_profiled_and_served_as_fitted(workspace, january, model) -> None:
    reference, holdout = january.iloc[:4_000], january.iloc[4_000:6_000]
    version = workspace.register("late", model, reference=reference, target="late", holdout=holdout,
                                 trust=LGBM_TYPES)
    assert version.params["trusted_types"] == LGBM_TYPES and version.params["not_applicable"] == {}
    assert version.schema.names == FEATURES and version.schema.classes == (0, 1)
    proba = model.predict_proba(holdout[FEATURES])
    assert version.metrics["accuracy"] == pytest.approx(m.accuracy_score(holdout["late"], proba.argmax(axis=1)))
    assert version.metrics["roc_auc"] == pytest.approx(m.roc_auc_score(holdout["late"], proba[:, 1]))
    profile = workspace.registry.profile("late")
    assert profile.adversarial is not None and profile.performance.n_holdout == len(holdout)
    rows = holdout[FEATURES].head(20).astype(object).where(holdout[FEATURES].head(20).notna(), None)
    served = workspace.predict("late", rows.to_dict(orient="records"))
    assert np.allclose(served.probabilities, proba[:20])
    # loopwatch cannot refit a pipeline it did not build: said plainly, not a failed training
    with pytest.raises(NotApplicable, match="cannot refit"):
        workspace.retrain("late")


def test_a_monitor_only_version_of_the_same_outputs_agrees_and_is_calibrated(workspace, january, model) -> None:
    holdout, later = january.iloc[4_000:6_000], january.iloc[6_000:]
    fitted = workspace.register("late", model, reference=january.iloc[:4_000], target="late", holdout=holdout,
                                trust=LGBM_TYPES)
    external = workspace.register("ext", reference=with_outputs(model, holdout), target="late",
                                  prediction_column="pred", probability_prefix="proba_")
    assert external.estimator == "monitor-only" and external.schema.classes == (0, 1)
    assert external.schema.names == FEATURES  # outputs and target are not features
    assert external.metrics["accuracy"] == pytest.approx(fitted.metrics["accuracy"])
    assert set(external.params["not_applicable"]) == {"evasion", "shadow", "retraining", "gate"}
    profile = workspace.registry.profile("ext")
    assert profile.adversarial is None
    # the confidence-based estimator, fitted on the reference's probabilities and labels, predicts
    # the accuracy of later January flights it never saw
    cbpe = fit_estimator(profile.performance)
    later_proba = model.predict_proba(later[FEATURES])
    estimated = cbpe.estimate(later_proba)["accuracy"]
    realized = m.accuracy_score(later["late"], later_proba.argmax(axis=1))
    assert abs(estimated.value - realized) < 0.03, (estimated, realized)
    with pytest.raises(NotApplicable, match="/v1/models/ext/events"):
        workspace.predict("ext", [dict.fromkeys(FEATURES, 1.0)])
    for refused in (lambda: workspace.retrain("ext"), lambda: workspace.gate("ext")):
        with pytest.raises(NotApplicable, match="monitor-only"):
            refused()


def test_probability_columns_left_unnamed_are_refused_not_taken_for_features(workspace, january, model) -> None:
    reference = with_outputs(model, january.iloc[4_000:5_000])
    with pytest.raises(InvalidInput, match="proba_0, proba_1 look like the model's class probabilities"):
        workspace.register("ext", reference=reference, target="late", prediction_column="pred")
    with pytest.raises(NotFound):
        workspace.registry.resolve("ext")
    # excluded, they are neither features nor probabilities; a column that only shares the
    # name pattern (it does not sum to 1 with its siblings) stays a feature
    kept = workspace.register("ext", reference=reference.assign(proba_1=reference["proba_1"] / 2), target="late",
                              prediction_column="pred")
    assert "proba_0" in kept.schema.names
    excluded = workspace.register("ext2", reference=reference, target="late", prediction_column="pred",
                                  exclude=["proba_0", "proba_1"])
    assert excluded.schema.names == FEATURES


def test_labels_where_known_and_none_at_all(workspace, january, model) -> None:
    reference = with_outputs(model, january.iloc[4_000:6_000])
    partly = reference.assign(late=reference["late"].where(np.arange(len(reference)) % 3 != 0))
    version = workspace.register("partly", reference=partly, target="late", prediction_column="pred",
                                 probability_columns=["proba_0", "proba_1"], classes=[0, 1])
    assert version.metrics["n_holdout"] == int(partly["late"].notna().sum())
    assert workspace.registry.profile("partly").performance.n_holdout == int(partly["late"].notna().sum())
    unlabelled = workspace.register("blind", reference=reference.drop(columns="late"), prediction_column="pred",
                                    probability_prefix="proba_")
    assert "performance_estimation" in unlabelled.params["not_applicable"] and unlabelled.metrics == {}
    profile = workspace.registry.profile("blind")
    assert profile.performance is None and profile.n == len(reference)
    assert profile.outputs is not None and "prediction" in profile.outputs.columns  # prediction drift


def test_a_monitor_only_regressor_gets_direct_loss_estimation(workspace, january) -> None:
    frame = january.dropna(subset=["air_time"]).iloc[:3_000]
    slope, intercept = np.polyfit(frame["distance"], frame["air_time"], 1)
    reference = frame.assign(predicted=intercept + slope * frame["distance"])
    version = workspace.register("air", reference=reference.drop(columns="late"), target="air_time",
                                 prediction_column="predicted", exclude=["carrier"])
    assert version.task == "regression" and "carrier" not in version.schema.names
    assert version.metrics["mae"] == pytest.approx(m.mean_absolute_error(reference["air_time"], reference["predicted"]))
    assert workspace.registry.profile("air").performance.task == "regression"


def test_bad_monitor_only_references_are_refused_clearly(workspace, january, model) -> None:
    reference = with_outputs(model, january.iloc[:500])
    cases = [
        (reference.assign(proba_1=reference["proba_1"] * 0.5), "sum to 1"),
        (reference.assign(pred=np.where(np.arange(500) == 0, 7, reference["pred"])), "not among"),
        (reference.drop(columns="proba_0"), "columns not in the reference"),
    ]
    for frame, message in cases:
        with pytest.raises(InvalidInput, match=message):
            workspace.register("bad", reference=frame, target="late", prediction_column="pred",
                               probability_columns=["proba_0", "proba_1"], classes=[0, 1])


def log_external(workspace, name: str, frame: pd.DataFrame, start: str) -> None:  # type: ignore[no-untyped-def]
    """Store the external model's predictions on ``frame`` as prediction events, one a minute from
    ``start``, as an ingestion does (that route is tested where it is built)."""
    from datetime import datetime, timezone

    from loopwatch.features import validate_rows
    from loopwatch.records import LoggedRequest
    from loopwatch.records.fingerprint import software_fingerprint

    meta = workspace.registry.resolve(name)
    rows = frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None).to_dict(orient="records")
    validated = validate_rows(meta.schema, rows, max_rows=len(rows), nullable=(), imputes=frozenset())
    times = list(pd.date_range(start, periods=len(rows), freq="min", tz="UTC").to_pydatetime())
    workspace.store.write_requests([LoggedRequest(
        request_id=f"{name}-{start}", model_name=name, model_version=meta.version, request_type="ingested",
        client_id=None, fingerprint=software_fingerprint(meta.artifact_sha256), body_sha256="0" * 64,
        response=b"{}", runtime_ms=0.0, received_at=datetime.now(timezone.utc), replayed=True,
        predictions=[[int(p)] for p in frame["pred"]],
        probabilities=frame[["proba_0", "proba_1"]].to_numpy().tolist(),
        request_summary=validated.request_summary(), row_summaries=validated.row_summaries(),
        data=validated.rows, timestamps=times)])


def test_the_monitor_watches_a_monitor_only_model_and_says_evasion_does_not_apply(workspace, january, model) -> None:
    from loopwatch.application.monitoring.runner import monitor

    workspace.register("ext", reference=with_outputs(model, january.iloc[4_000:6_000]), target="late",
                       prediction_column="pred", probability_prefix="proba_")
    flights = realdata.flights()
    july = flights[(flights["time"] >= "2013-07-01") & (flights["origin"] == 1)].head(1_000)
    log_external(workspace, "ext", with_outputs(model, january.iloc[6_000:7_000]), "2013-01-07")
    log_external(workspace, "ext", with_outputs(model, july), "2013-01-14")
    report = monitor(workspace.store, workspace.registry, "ext", window="7d")
    quiet, shifted = [w for w in report.windows if w.n_events == 1_000]
    assert quiet.evasion == shifted.evasion == {
        "not_applicable": "monitor-only model: loopwatch does not score its predictions"}
    assert not any(a.startswith("evasion") for a in quiet.alarms + shifted.alarms)
    assert "feature:origin" in shifted.alarms and "feature:origin" not in quiet.alarms
    assert any(a.startswith("prediction:") for a in shifted.alarms), shifted.alarms


def test_an_external_label_on_a_fitted_model_makes_a_version_that_still_loads(workspace, january, model) -> None:
    from datetime import datetime, timezone

    workspace.register("late", model, reference=january.iloc[:4_000], target="late", trust=LGBM_TYPES)
    number = workspace.store.resolve_external_version("late", "lgbm-2013-02", base_version=1,
                                                      created_at=datetime(2013, 2, 1, tzinfo=timezone.utc))
    copy = workspace.registry.resolve("late", number)
    # the types the owner trusted come with the copy: without them its artifact would be refused
    assert copy.params["trusted_types"] == LGBM_TYPES and copy.params["external_version"] == "lgbm-2013-02"
    rows = january[FEATURES].iloc[4_000:4_010]
    loaded = workspace.registry.load("late", number)
    assert np.allclose(loaded.pipeline.predict_proba(rows), model.predict_proba(rows))
