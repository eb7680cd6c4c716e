from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from loopwatch.simulate import (
    FEATURES,
    Incident,
    ChurnScenario,
    Day,
    drifted_concept,
    expected_auc,
    sample_customers,
    stable_churn_probability,
)


def _incident(scenario: ChurnScenario, kind: str) -> Incident:
    (incident,) = scenario.timeline.of_kind(kind)
    return incident


def test_covariate_shift_moves_watch_hours_by_the_stated_sd(
    scenario: ChurnScenario, training: pd.DataFrame, day_frames: dict[int, pd.DataFrame]
) -> None:
    incident = _incident(scenario, "covariate_shift")
    mean, sd = training["watch_hours"].mean(), training["watch_hours"].std()
    for index in range(incident.day, incident.day + 4):
        moved = (day_frames[index]["watch_hours"].mean() - mean) / sd
        assert moved == pytest.approx(incident.effect_size, abs=0.12), index
    for index in (incident.day - 1, incident.day + 4):
        assert abs(day_frames[index]["watch_hours"].mean() - mean) / sd < 0.12


def test_covariate_shift_scales_the_same_customers(
    scenario: ChurnScenario, stable_scenario: ChurnScenario, day_frames: dict[int, pd.DataFrame]
) -> None:
    incident = _incident(scenario, "covariate_shift")
    shifted = day_frames[incident.day].set_index("entity_id")
    stable = stable_scenario.day(incident.day).frame().set_index("entity_id").loc[shifted.index]
    ratio = (shifted["watch_hours"] / stable["watch_hours"]).median()
    expected = 1 + incident.effect_size * stable["watch_hours"].std() / stable["watch_hours"].mean()
    assert ratio == pytest.approx(expected, rel=0.1)
    pd.testing.assert_series_equal(shifted["monthly_fee"], stable["monthly_fee"])


def test_selection_bias_brings_a_new_country(scenario: ChurnScenario, day_frames: dict[int, pd.DataFrame]) -> None:
    incident = _incident(scenario, "selection_bias")
    during = [day_frames[index]["country"] == "BR" for index in range(incident.day, incident.day + 4)]
    assert all(share.mean() == pytest.approx(incident.effect_size, abs=0.05) for share in during)
    assert pd.concat(during).mean() == pytest.approx(incident.effect_size, abs=0.02)
    for index in (incident.day - 1, incident.day + 4):
        assert not (day_frames[index]["country"] == "BR").any()


def test_software_change_sends_minutes_from_the_upgraded_client_only(
    scenario: ChurnScenario, stable_scenario: ChurnScenario, all_days: list[Day]
) -> None:
    incident = _incident(scenario, "software_change")
    broken = all_days[incident.day].frame().set_index("entity_id")
    stable = stable_scenario.day(incident.day).frame().set_index("entity_id").loc[broken.index]
    upgraded = broken["client_version"] == "3.0.0"
    assert upgraded.sum() > 50
    assert set(broken.loc[upgraded, "client_id"]) == {"mobile-app"}
    assert (broken.loc[upgraded, "timestamp"] >= pd.Timestamp(incident.start)).all()
    before = (broken["client_id"] == "mobile-app") & (broken["timestamp"] < pd.Timestamp(incident.start))
    assert set(broken.loc[before, "client_version"]) == {"2.3.0"}
    np.testing.assert_allclose(
        broken.loc[upgraded, "watch_hours"], stable.loc[upgraded, "watch_hours"] * 60, atol=0.01
    )
    pd.testing.assert_series_equal(broken.loc[~upgraded, "watch_hours"], stable.loc[~upgraded, "watch_hours"])
    # The fix ships when the incident ends and the values are hours again.
    end_day = all_days[incident.day + 4].frame()
    mobile = end_day[end_day["client_id"] == "mobile-app"]
    assert set(mobile["client_version"]) == {"3.0.0", "3.0.1"}
    fixed = mobile[mobile["client_version"] == "3.0.1"]
    others = end_day[end_day["client_id"] == "web-app"]
    assert fixed["watch_hours"].mean() < 2 * others["watch_hours"].mean()
    later = all_days[incident.day + 6].frame()
    assert set(later.loc[later["client_id"] == "mobile-app", "client_version"]) == {"3.0.1"}


def test_adversarial_probing_hugs_the_decision_boundary(
    scenario: ChurnScenario, day_frames: dict[int, pd.DataFrame]
) -> None:
    incident = _incident(scenario, "adversarial_probing")
    frame = day_frames[incident.day]
    probes = frame[frame["client_id"] == "probe-7"]
    assert len(probes) == round(incident.effect_size * scenario.predictions_per_day)
    assert probes["label"].isna().all()
    assert (probes["timestamp"] >= pd.Timestamp(incident.start)).all()
    assert (probes["timestamp"] < pd.Timestamp(incident.start + timedelta(hours=3))).all()
    probability = stable_churn_probability(probes[list(FEATURES)])
    assert np.abs(probability - 0.5).max() < 0.1
    assert np.abs(probability - 0.5).mean() < 0.05
    # Grid-like: few distinct points in every feature but the two swept ones, tiny steps in those.
    assert probes["tenure_months"].nunique() <= 4
    for _, sweep in probes.groupby(["tenure_months", "plan", "device", "country"]):
        for name in ("watch_hours", "monthly_fee"):
            steps = np.diff(np.sort(sweep[name].unique()))
            np.testing.assert_allclose(steps, 0.05, atol=0.011)
    for index in (incident.day - 1, incident.day + 1):
        assert not (day_frames[index]["client_id"] == "probe-7").any()


def test_label_poisoning_flips_the_stated_share(scenario: ChurnScenario, all_days: list[Day]) -> None:
    incident = _incident(scenario, "label_poisoning")
    truth = {
        entity: (label, moment)
        for day in all_days
        for batch in day.batches
        for entity, label, moment in zip(batch.entity_ids, batch.labels, batch.label_times)
    }
    partner = [record for record in all_days[incident.day].feedback if record.source == "partner-feed"]
    assert len(partner) == 400
    flips = [record.label != truth[record.entity_id][0] for record in partner]
    assert np.mean(flips) == pytest.approx(incident.effect_size, abs=0.02)
    assert all(record.label_time >= incident.start for record in partner)
    # The partner's labels come before the CRM's, so for a while they are the only ones.
    assert all(record.label_time < truth[record.entity_id][1] for record in partner)
    others = [record for day in all_days if day.index != incident.day for record in day.feedback]
    assert {record.source for record in others} == {"crm-export"}


def test_concept_drift_costs_a_fixed_model_auc(scenario: ChurnScenario, day_frames: dict[int, pd.DataFrame]) -> None:
    incident = _incident(scenario, "concept_drift")

    def pooled(indices: range) -> tuple[float, float]:
        frame = pd.concat([day_frames[i] for i in indices])
        frame = frame[frame["label"].notna() & (frame["country"] != "BR")]
        labels = frame["label"].to_numpy(dtype=int)
        return roc_auc_score(labels, stable_churn_probability(frame[list(FEATURES)])), labels.mean()

    before_auc, before_rate = pooled(range(0, 8))
    after_auc, after_rate = pooled(range(incident.day + 1, incident.day + 8))
    assert before_auc - after_auc > 0.03
    assert after_rate == pytest.approx(before_rate, abs=0.03)


def test_drifted_concept_is_calibrated_to_the_stated_auc_drop() -> None:
    frame = sample_customers(np.random.default_rng(99), n=30_000)
    score = stable_churn_probability(frame)
    base = expected_auc(score, score)
    drifted = drifted_concept(auc_drop=0.06).probability(frame)
    assert base - expected_auc(score, drifted) == pytest.approx(0.06, abs=0.01)
    assert drifted.mean() == pytest.approx(score.mean(), abs=0.01)
    with pytest.raises(ValueError):
        drifted_concept(auc_drop=0.5)


def test_concept_at_follows_the_timeline(scenario: ChurnScenario) -> None:
    incident = _incident(scenario, "concept_drift")
    assert scenario.concept_at(incident.start - timedelta(seconds=1)) != scenario.concept_at(incident.start)
