"""Model extraction by ordinary querying, on a real table, end to end: a model trained on
scikit-learn's breast cancer table is served, every request logged to a real SQLite file; for
three days a high-volume client sends real rows and a clinic sends real rows of larger tumours
only; on the last day one attacker copies the model by queries over the feature box, by
active learning near its surrogate's boundary, or by a lattice. The loop engine names each
attacker (whose copy agrees with the served model on most held-out real rows) and neither
ordinary client. The graded version, five seeds and two tables, is ``benchmarks/extraction.py``
(results in docs/security.md); this one runs one seed (not a graded one) at a smaller size."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.extraction_scenario import STRATEGIES, Plan, Prepared, attack, breast_cancer, prepare

PLAN = Plan(days=3, web_per_day=600, clinic_per_day=150, attack_rows=1000)
SEED = 5


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    return prepare(breast_cancer(), SEED, tmp_path_factory.mktemp("extraction-realdata"), plan=PLAN)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_the_attacker_is_named_and_no_ordinary_client_is(prepared: Prepared, strategy: str, tmp_path: Path) -> None:
    result = attack(prepared, strategy, tmp_path)
    attacker = [s for s in result.scores if s["client"] == "attacker"]
    assert result.attacker_named, (result.incidents, attacker)
    assert result.benign_named == [], result.benign_named
    # the ordinary clients on every day: far from any threshold
    ordinary = [s for s in result.scores if s["client"] != "attacker"]
    assert len(ordinary) == 2 * PLAN.days and not any(s["flagged"] for s in ordinary)
    assert max(s["score"] for s in ordinary) < 0.5
    # the attack worked: a copy that mostly agrees with the served model (queries drawn over
    # the box copy it poorly here, 33%: most of a tumour table's box looks malignant to the model)
    if strategy != "uniform":
        assert result.surrogate_agreement >= 0.85
    (scored,) = attacker
    assert scored["flagged"] and scored["reasons"], scored
