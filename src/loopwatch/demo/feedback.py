"""The demo's other traffic: the monitoring configuration, late labels, daily business metrics,
and the loop evaluation at the end, all through the service's HTTP API as a team would send them,
each party with its own API key (see :mod:`loopwatch.demo.keys`)."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx

from loopwatch.demo.keys import DemoKeys
from loopwatch.errors import LoopwatchError
from loopwatch.records.jsonutil import utc_iso

MODEL_NAME = "churn"
#: Labels per feedback request.
FEEDBACK_CHUNK = 2000

#: The demo team's monitoring configuration. About 17 requests a day reach the churn
#: model, so a p95 would be the second-slowest request of the day; the median is held
#: to the budget instead. The budget is relative (3 times the first week's median) because
#: runtimes depend on the machine the demo runs on. Keeping a customer who would have
#: churned is worth a month's fee minus the retention offer; an offer to a loyal customer
#: costs the offer.
DEMO_MONITORING = {
    "latency_budget_ratio": 3.0,
    "latency_percentile": 50.0,
    "segment_feature": "country",
    "business_metric": "revenue",
    "value_matrix": {"1": {"1": 40.0, "0": -60.0}, "0": {"1": -10.0, "0": 0.0}},
}


def _check(answer: httpx.Response, what: str) -> Any:
    if answer.status_code != 200:
        raise LoopwatchError(f"{what}: the service answered {answer.status_code}: {answer.text[:300]}")
    return answer.json()


def configure_monitoring(client: httpx.Client, keys: DemoKeys) -> dict[str, Any]:
    answer = client.put(
        f"/v1/models/{MODEL_NAME}/monitoring-config", json=DEMO_MONITORING, headers=keys.operator_headers()
    )
    return dict(_check(answer, "configuring monitoring"))


def send_feedback(client: httpx.Client, day: Any, keys: DemoKeys) -> int:
    """The day's labels (from every feedback source, each with its own key) and its
    business metrics; returns the labels sent."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for record in day.feedback:
        by_source.setdefault(record.source, []).append(
            {"entity_id": record.entity_id, "label": record.label, "label_time": utc_iso(record.label_time)}
        )
    sent = 0
    for source, labels in sorted(by_source.items()):
        for lo in range(0, len(labels), FEEDBACK_CHUNK):
            chunk = labels[lo : lo + FEEDBACK_CHUNK]
            answer = client.post("/v1/feedback", json={"model": MODEL_NAME, "labels": chunk},
                                 headers=keys.source_headers(source))
            _check(answer, "sending labels")
            sent += len(chunk)
    if day.business_metrics:
        observations = [
            {"name": m.name, "timestamp": utc_iso(m.timestamp), "value": m.value, "segment": m.segment}
            for m in day.business_metrics
        ]
        answer = client.post("/v1/business-metrics", json={"observations": observations},
                             headers=keys.business_headers())
        _check(answer, "sending business metrics")
    return sent


def evaluate(client: httpx.Client, scenario: Any, keys: DemoKeys) -> dict[str, Any]:
    """Ask the service for the model's loops as of the end of the period, and grade them."""
    from loopwatch.demo.grading import affected_days, grade_loops

    started = time.perf_counter()
    answer = client.get(
        f"/v1/models/{MODEL_NAME}/loops", params={"until": utc_iso(scenario.end), "fresh": "true"},
        headers=keys.operator_headers(), timeout=900.0,
    )
    report = _check(answer, "evaluating the loops")
    timeline = scenario.timeline.to_dict()
    graded = grade_loops(timeline, report["incidents"], start=scenario.start, n_days=scenario.n_days,
                         recommendations=report["recommendations"])
    # the days a label-free estimate cannot know by design: the relation between inputs and
    # outcome moved (concept drift), or a software change broke the inputs the model saw
    unknowable = sorted({day for incident in timeline["incidents"]
                         if incident["kind"] in ("concept_drift", "software_change")
                         for day in affected_days(incident, scenario.n_days)})
    return {
        "seconds": round(time.perf_counter() - started, 2),
        **graded,
        "recommendations": report["recommendations"],
        "labels": {k: v for k, v in report.get("labels", {}).items() if k != "windows"},
        "performance": _performance_summary(report.get("performance", {}), scenario.start, set(unknowable)),
        "business": report.get("business", {}),
        "windows": len(report.get("windows", [])),
    }


def _performance_summary(performance: dict[str, Any], start: datetime, unknowable: set[int]) -> dict[str, Any]:
    """Label-free estimate against realized performance per day, and the estimation error
    apart on the days the estimate is meant for (inputs may move, the relation between inputs
    and outcome holds) and on the days it cannot know by design (``unknowable``: concept
    drift, inputs broken by a software change). One figure over all days would mix them."""
    days = []
    meant: list[float] = []
    cannot: list[float] = []
    for entry in performance.get("windows", []):
        day = (datetime.fromisoformat(entry["start"]) - start).days
        realized = entry.get("realized")
        estimated = entry.get("estimated")
        days.append({
            "day": day, "version": entry["model_version"], "metric": entry["metric"],
            "estimated": None if estimated is None else round(estimated["value"], 4),
            "realized": None if realized is None else round(realized["value"], 4),
            "inputs_drifted": entry["inputs_drifted"], "meant_for": day not in unknowable,
        })
        if "estimation_error" in entry:
            (cannot if day in unknowable else meant).append(abs(entry["estimation_error"]))
    return {
        "days": days,
        "versions": performance.get("versions", {}),
        "meant_for": {"days": len(meant), "mean_abs_error": _mean(meant), "median_abs_error": _median(meant)},
        "cannot_know": {"days": len(cannot), "mean_abs_error": _mean(cannot), "median_abs_error": _median(cannot)},
    }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


def _median(values: list[float]) -> float | None:
    ordered = sorted(values)
    return round(ordered[len(ordered) // 2], 4) if ordered else None
