"""Prometheus metrics, with no high-cardinality labels (never a request id).

With several uvicorn workers the client library's multiprocess mode is used:
the CLI sets ``PROMETHEUS_MULTIPROC_DIR`` before the workers start, and
``/metrics`` aggregates what every worker wrote there.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

from loopwatch.service.shadow import COUNTERS as SHADOW_OUTCOMES

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ServiceMetrics:
    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
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

    def count_shadow(self, outcome: str) -> None:
        """Count one shadow outcome; the :class:`~loopwatch.service.shadow.ShadowScorer` hook."""
        self.shadow_requests.labels(outcome=outcome).inc()

    def render(self) -> tuple[bytes, str]:
        if self.multiprocess:
            from prometheus_client import multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
