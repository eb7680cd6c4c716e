from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.compose import make_column_transformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from loopwatch.simulate import CATEGORICAL_FEATURES, FEATURES, NUMERIC_FEATURES, TARGET, ChurnScenario, Day

# Days with no incident effect on the inputs (35 is after the concept drift,
# whose inputs are unchanged by definition).
STABLE_DAYS = (2, 13, 21, 29, 35, 50)


def test_training_data_shape_and_ranges(training: pd.DataFrame) -> None:
    assert list(training.columns) == [*FEATURES, TARGET]
    assert len(training) == 5000
    assert set(training[TARGET].unique()) == {0, 1}
    assert training[TARGET].dtype.kind == "i"
    assert 0.18 <= training[TARGET].mean() <= 0.26
    for name in NUMERIC_FEATURES:
        assert training[name].dtype == float
        assert (training[name].dropna() >= 0).all()
    assert 0.01 <= training["age"].isna().mean() <= 0.03
    assert training.drop(columns="age").notna().all().all()
    assert 7.0 <= training["monthly_fee"].quantile(0.02) and training["monthly_fee"].quantile(0.98) <= 21.0
    assert (training["support_tickets"] == training["support_tickets"].round()).all()
    assert set(training["plan"]) == {"basic", "standard", "premium"}
    assert set(training["device"]) == {"tv", "mobile", "web", "tablet"}
    assert set(training["country"]) == {"US", "GB", "DE", "FR", "ES", "IT"}


@pytest.mark.parametrize("index", STABLE_DAYS)
def test_stable_days_look_like_training(
    index: int, training: pd.DataFrame, day_frames: dict[int, pd.DataFrame]
) -> None:
    frame = day_frames[index]
    frame = frame[frame["client_id"] != "probe-7"]
    for name in NUMERIC_FEATURES:
        result = ks_2samp(frame[name].dropna(), training[name].dropna())
        assert result.pvalue > 0.001, (index, name, result)
    for name in CATEGORICAL_FEATURES:
        assert set(frame[name]) == set(training[name])


def test_logistic_regression_learns_the_world(training: pd.DataFrame, day_frames: dict[int, pd.DataFrame]) -> None:
    model = make_pipeline(
        make_column_transformer(
            (make_pipeline(SimpleImputer(), StandardScaler()), list(NUMERIC_FEATURES)),
            (OneHotEncoder(handle_unknown="ignore"), list(CATEGORICAL_FEATURES)),
        ),
        LogisticRegression(max_iter=1000),
    )
    model.fit(training[list(FEATURES)], training[TARGET])
    test = day_frames[2]
    auc = roc_auc_score(test["label"].to_numpy(dtype=int), model.predict_proba(test[list(FEATURES)])[:, 1])
    assert 0.7 <= auc <= 0.9


def test_days_are_in_order_with_requests_in_time_order(all_days: list[Day]) -> None:
    assert [day.index for day in all_days] == list(range(70))
    assert all_days[0].start.isoformat() == "2026-01-05T00:00:00+00:00"
    for day in all_days:
        assert day.date == day.start.date()
        assert day.n_predictions >= 1000
        sent = [batch.sent_at for batch in day.batches]
        assert sent == sorted(sent)
        for batch in day.batches:
            assert list(batch.timestamps) == sorted(batch.timestamps)
            assert day.start <= batch.timestamps[0] and batch.timestamps[-1] < day.end
            assert batch.request_type in ("api", "batch")
            assert 20 <= len(batch) <= 220
            assert len(batch.rows) == len(batch.entity_ids) == len(batch.labels) == len(batch.label_times)
            assert all(row.keys() == set(FEATURES) for row in batch.rows)


def test_rows_are_json_ready_with_none_for_missing(all_days: list[Day]) -> None:
    rows = [row for batch in all_days[0].batches for row in batch.rows]
    assert any(row["age"] is None for row in rows)
    for row in rows:
        for name in NUMERIC_FEATURES:
            value = row[name]
            assert value is None or type(value) is float
        for name in CATEGORICAL_FEATURES:
            assert type(row[name]) is str


def test_entity_ids_are_unique_over_the_period(all_days: list[Day]) -> None:
    ids = [entity for day in all_days for batch in day.batches for entity in batch.entity_ids]
    assert len(ids) == len(set(ids))


def test_labels_arrive_14_to_16_days_after_their_prediction(all_days: list[Day]) -> None:
    for day in all_days[:3]:
        for batch in day.batches:
            if not batch.has_labels:
                continue
            for moment, label_time in zip(batch.timestamps, batch.label_times):
                assert label_time is not None
                assert timedelta(days=14) <= label_time - moment <= timedelta(days=16)


def test_feedback_is_the_crm_labels_arriving_that_day(scenario: ChurnScenario, all_days: list[Day]) -> None:
    truth = {
        entity: (label, moment)
        for day in all_days
        for batch in day.batches
        if batch.has_labels
        for entity, label, moment in zip(batch.entity_ids, batch.labels, batch.timestamps)
    }
    seen: set[str] = set()
    for day in all_days:
        times = [record.label_time for record in day.feedback]
        assert times == sorted(times)
        for record in day.feedback:
            assert day.start <= record.label_time < day.end
            if record.source == "crm-export":
                assert (record.label, record.prediction_time) == truth[record.entity_id]
                assert record.entity_id not in seen
                seen.add(record.entity_id)
    assert not any(day.feedback for day in all_days[:14])
    trailing = {record.entity_id for record in scenario.trailing_feedback()}
    assert seen.isdisjoint(trailing)
    assert seen | trailing == set(truth)


def test_revenue_per_country_and_total(all_days: list[Day]) -> None:
    for day in all_days:
        metrics = day.business_metrics
        assert {metric.name for metric in metrics} == {"revenue"}
        total = [metric.value for metric in metrics if metric.segment is None]
        segments = {metric.segment: metric.value for metric in metrics if metric.segment is not None}
        assert len(total) == 1
        assert total[0] == pytest.approx(sum(segments.values()), abs=0.1)
        assert {"US", "GB", "DE", "FR", "ES", "IT"} <= set(segments)
        assert all(day.start <= metric.timestamp < day.end for metric in metrics)
        assert 20_000 < total[0] < 45_000
    totals = np.array([m.value for day in all_days for m in day.business_metrics if m.segment is None])
    assert totals.std() / totals.mean() < 0.1
