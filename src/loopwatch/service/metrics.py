"""Prometheus metrics, with no high-cardinality labels (never a request id).

With several uvicorn workers the client library's multiprocess mode is used:
the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start, and
``/metrics`` aggregates what every worker wrote there.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from loopwatch.service.shadow import COUNTERS as SHADOW_OUTCOMES

_log = logging.getLogger("loopwatch.service")

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class EvaluationCollector:
    """Scheduled evaluations per model, read from the store at each scrape.

    Evaluations are claimed across workers and recorded in the store, so the store, not a
    worker's memory, knows them all, and the counts outlive a restart. One label, the model:
    bounded by the models registered.
    """

    def __init__(self, store: Any) -> None:
        self.store = store

    def describe(self) -> list[Any]:
        return []  # read at scrape time only: describing would query the store at registration

    def collect(self) -> Iterator[Any]:
        failed = CounterMetricFamily(
            "loopwatch_evaluations_failed", "Scheduled evaluations that failed, by model.", labels=["model"]
        )
        last = GaugeMetricFamily(
            "loopwatch_last_successful_evaluation_timestamp_seconds",
            "Unix time of the model's last scheduled evaluation that succeeded.", labels=["model"],
        )
        try:
            statuses = self.store.evaluation_status()
        except Exception as exc:  # the metrics page must answer when the database does not
            _log.warning("metrics: could not read the evaluations: %s", exc)
            statuses = []
        for status in statuses:
            failed.add_metric([status.model_name], status.failures)
            if status.last_success_at is not None:
                last.add_metric([status.model_name], status.last_success_at.timestamp())
        yield failed
        yield last


class ServiceMetrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        self.evaluations: EvaluationCollector | None = None
        own = None if self.multiprocess else self.registry
        self.requests = Counter(
            "loopwatch_http_requests_total",
            "HTTP requests by route template, method and status code.",
            ["route", "method", "status"],
            registry=own,
        )
        self.latency = Histogram(
            "loopwatch_http_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.queue_depth = Gauge(
            "loopwatch_log_queue_depth",
            "Requests waiting for the prediction-log writer.",
            registry=own,
            multiprocess_mode="livesum",
        )
        self.overloaded = Counter(
            "loopwatch_overloaded_total",
            "Predict requests answered 503 because the log queue was full.",
            registry=own,
        )
        self.rejections = Counter(
            "loopwatch_rejections_total",
            "Predict requests rejected before reaching the model, by reason.",
            ["reason"],
            registry=own,
        )
        self.predictions = Counter(
            "loopwatch_predicted_rows_total",
            "Rows predicted and durably logged.",
            registry=own,
        )
        self.commits = Histogram(
            "loopwatch_log_commit_seconds",
            "Time to commit one group of requests to the prediction log.",
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.shadow_requests = Counter(
            "loopwatch_shadow_requests_total",
            "Served requests handed to the candidate's shadow scoring, by outcome: submitted, dropped "
            "(queue full, or the service stopping), skipped (no candidate), scored, written, failed.",
            ["outcome"],
            registry=own,
        )
        for outcome in SHADOW_OUTCOMES:  # every outcome shows, at 0 until it happens
            self.shadow_requests.labels(outcome=outcome)

    def watch_evaluations(self, store: Any) -> None:
        """Show the store's scheduled evaluations (failures, last success) on ``/metrics``."""
        if self.evaluations is not None:
            self.evaluations.store = store  # a service started again on its app: the new store
            return
        self.evaluations = EvaluationCollector(store)
        if not self.multiprocess:
            self.registry.register(self.evaluations)

    def count_shadow(self, outcome: str) -> None:
        """Count one shadow outcome; the :class:`~loopwatch.service.shadow.ShadowScorer` hook."""
        self.shadow_requests.labels(outcome=outcome).inc()

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            if self.evaluations is not None:
                registry.register(self.evaluations)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
