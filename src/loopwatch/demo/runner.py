"""The demo: a simulated production period of a churn model, replayed through the real service.

It trains version 1 on the simulator's training data, issues an API key to each
party (see :mod:`loopwatch.demo.keys`), starts ``loopwatch serve`` with auth on
as a separate process on loopback, checks that a request without a key and one
beyond its key's scope are refused, replays every simulated day through the
HTTP API in batches (with the rows' event times, so events are marked as
replayed), deploys the slower version on the day the timeline says, and
summarises what was logged. It is an edge: it drives the service from outside
as a client would, and nothing in the core imports it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import httpx
import numpy as np

from loopwatch.config import Settings
from loopwatch.errors import LoopwatchError
from loopwatch.records.jsonutil import utc_iso
from loopwatch.demo.feedback import MODEL_NAME, configure_monitoring, evaluate, send_feedback
from loopwatch.demo.files import RECENT_DAYS, write_demo_files
from loopwatch.demo.keys import check_auth, issue_demo_keys, scenario_parties
from loopwatch.application.workspace import Workspace

#: Concurrent client connections replaying traffic.
REPLAY_CONCURRENCY = 4
#: Seconds to wait for the service to become ready.
STARTUP_TIMEOUT = 60.0


@dataclass
class DemoResult:
    database: str
    service_url: str
    seed: int
    days: int
    requests: int
    events_logged: int
    rows_sent: int
    replay_seconds: float
    latencies_ms: list[float] = field(repr=False)
    versions: list[dict[str, Any]]
    deployments: list[dict[str, Any]]
    timeline: dict[str, Any]
    retries_after_503: int
    labels_sent: int = 0
    loops: dict[str, Any] = field(default_factory=dict)
    #: The keys issued (names, ids, scopes; never tokens) and the refusals checked.
    auth: dict[str, Any] = field(default_factory=dict)
    #: The files left next to the database for trying the documented commands (name -> path).
    files: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_ms) if self.latencies_ms else np.zeros(1)
        return {
            "database": self.database,
            "service_url": self.service_url,
            "seed": self.seed,
            "days": self.days,
            "requests": self.requests,
            "rows_sent": self.rows_sent,
            "events_logged": self.events_logged,
            "replay_seconds": round(self.replay_seconds, 3),
            "throughput": {
                "requests_per_second": round(self.requests / self.replay_seconds, 1),
                "events_per_second": round(self.events_logged / self.replay_seconds, 1),
            },
            "latency_ms": {
                f"p{q}": round(float(np.percentile(lat, q)), 2) for q in (50, 90, 95, 99)
            }
            | {"max": round(float(lat.max()), 2)},
            "retries_after_503": self.retries_after_503,
            "versions": self.versions,
            "deployments": self.deployments,
            "timeline": self.timeline,
            "labels_sent": self.labels_sent,
            "loops": self.loops,
            "auth": self.auth,
            "files": self.files,
        }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """``loopwatch serve`` in a child process on loopback; with ``auth=True`` it asks for API keys
    as a service beyond loopback does (``LOOPWATCH_AUTH=on``); with ``summaries=False`` it keeps
    no window summaries and monitors from the log (``LOOPWATCH_SUMMARIES_ENABLED=0``)."""

    def __init__(
        self, database: str, *, port: int = 0, workers: int = 1, log_path: Path | None = None, auth: bool = False,
        summaries: bool = True,
    ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = database
        self.workers = workers
        self.log_path = log_path
        self.auth = auth
        self.summaries = summaries
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWATCH_")}
        # the demo replays past days in minutes: a wall-clock schedule would evaluate
        # half-replayed days, so the demo asks for its evaluation when the replay is done
        env["LOOPWATCH_SCHEDULE_ENABLED"] = "0"
        if self.auth:
            env["LOOPWATCH_AUTH"] = "on"
        env["LOOPWATCH_SUMMARIES_ENABLED"] = "1" if self.summaries else "0"
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "loopwatch", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port), "--database", self.database, "--workers", str(self.workers)],
                env=env, stdout=log, stderr=log,
            )
        finally:
            if not isinstance(log, int):  # the child holds its own copy of the handle
                log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise LoopwatchError(f"the demo service exited with code {self.process.returncode}")
            try:
                if httpx.get(f"{self.url}/v1/health/ready", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise LoopwatchError("the demo service did not become ready in time")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def prepare_database(workdir: Path) -> Path:
    """The demo's own database file, replaced on every run."""
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "loopwatch.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return path


#: Rows the demo's model is trained and calibrated on, and the share held out (measured and
#: calibrated on). Half is held out: the label-free estimators are calibrated on the holdout,
#: and on a 1,000-row holdout its own sampling error (an AUC of 0.803 against the population's
#: 0.773 on one seed) was most of the estimate's error on stable days.
TRAINING_ROWS = 10_000
HOLDOUT_SHARE = 0.5


def run_demo(
    *,
    seed: int = 7,
    days: int = 70,
    per_day: int = 1000,
    workdir: Path,
    port: int = 0,
    on_day: Callable[[int, int], None] | None = None,
    summaries: bool = True,
) -> DemoResult:
    from loopwatch.simulate import ChurnScenario, TARGET

    scenario = ChurnScenario(seed=seed, days=days, predictions_per_day=per_day)
    path = prepare_database(workdir)
    settings = Settings.from_env({}, home=workdir, database=str(path))
    latency_spec = scenario.latency_model_spec()
    with Workspace(settings) as ws:
        training = scenario.training_data(n=TRAINING_ROWS)
        # the scenario's own clean training table, trained on whole: the graded incidents are
        # measured against models fitted on every row (the attacks come later, through traffic)
        versions = [ws.train(MODEL_NAME, training, target=TARGET, seed=seed, test_size=HOLDOUT_SHARE, screen=False)]
        if latency_spec is not None:
            versions.append(
                ws.train(
                    MODEL_NAME, training, target=TARGET, seed=seed, test_size=HOLDOUT_SHARE, screen=False,
                    estimator=latency_spec.estimator,
                    estimator_params=dict(latency_spec.params), alias="candidate",
                )
            )
            # the slower version waits for its deployment day without an alias: as a candidate
            # it would score all traffic in shadow mode, which this replay does not need
            ws.registry.set_alias(MODEL_NAME, "candidate", None, reason="demo: deployed on its day")
        clients, sources = scenario_parties(scenario)
        keys = issue_demo_keys(ws.store, clients=clients, sources=sources, now=datetime.now(timezone.utc))
    latencies: list[float] = []
    deployments: list[dict[str, Any]] = []
    rows_sent = 0
    requests = 0
    retries = 0
    # ``summaries`` (the default): monitored as a team with millions of predictions a day runs it
    with ServiceProcess(str(path), port=port, log_path=workdir / "service.log", auth=True,
                        summaries=summaries) as service, httpx.Client(
        base_url=service.url, timeout=60.0, limits=httpx.Limits(max_connections=REPLAY_CONCURRENCY)
    ) as client:

        def send(item: tuple[int, int, Any]) -> tuple[float, int]:
            day_index, batch_index, batch = item
            body = {
                "rows": [dict(row) for row in batch.rows],
                "timestamps": [utc_iso(t) for t in batch.timestamps],
                "entity_ids": list(batch.entity_ids),
                "request_type": batch.request_type,
            }
            # the key says who sends: with auth on, the service logs its id as the client id
            headers = {
                "X-Request-ID": f"demo-{seed}-{day_index}-{batch_index}",
                "X-Client-Version": batch.client_version,
                **keys.client_headers(batch.client_id),
            }
            tries = 0
            while True:
                started = time.perf_counter()
                response = client.post(f"/v1/models/{MODEL_NAME}/predict", json=body, headers=headers)
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code == 503 and tries < 20:
                    tries += 1
                    time.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                if response.status_code != 200:
                    raise LoopwatchError(
                        f"the service answered {response.status_code} to a demo request: {response.text[:300]}"
                    )
                return elapsed, tries

        refusals = check_auth(client, keys, model=MODEL_NAME)
        configure_monitoring(client, keys)
        labels_sent = 0
        revenue: list[Any] = []
        recent_rows: list[dict[str, Any]] = []
        started = time.perf_counter()
        with ThreadPoolExecutor(REPLAY_CONCURRENCY) as pool:
            for day in scenario.days():
                if latency_spec is not None and day.index == latency_spec.deploy_day:
                    answer = client.post(
                        f"/v1/models/{MODEL_NAME}/promote", json={"version": latency_spec.model_version},
                        headers=keys.operator_headers(),
                    )
                    if answer.status_code != 200:
                        raise LoopwatchError(f"could not deploy the slower version: {answer.text[:300]}")
                    deployments.append({"day": day.index, **answer.json()})
                items = [(day.index, i, batch) for i, batch in enumerate(day.batches)]
                for elapsed, tries in pool.map(send, items):
                    latencies.append(elapsed)
                    retries += tries
                requests += len(items)
                rows_sent += day.n_predictions
                labels_sent += send_feedback(client, day, keys)
                revenue.extend(day.business_metrics)
                if day.index >= days - RECENT_DAYS:
                    recent_rows.extend(row for batch in day.batches for row in batch.rows)
                if on_day is not None:
                    on_day(day.index, day.n_predictions)
        replay_seconds = time.perf_counter() - started
        loops = evaluate(client, scenario, keys)
    files = write_demo_files(workdir, scenario=scenario, training=training, revenue=revenue, recent_rows=recent_rows)
    with Workspace(settings) as ws:
        events = ws.store.count_events(MODEL_NAME)
        version_list = [v.to_dict(with_schema=False) for v in ws.store.list_versions(MODEL_NAME)]
    return DemoResult(
        database=str(path),
        service_url=service.url,
        seed=seed,
        days=days,
        requests=requests,
        events_logged=events,
        rows_sent=rows_sent,
        replay_seconds=replay_seconds,
        latencies_ms=latencies,
        versions=[
            {k: v[k] for k in ("version", "estimator", "aliases", "metrics")} for v in version_list
        ],
        deployments=deployments,
        timeline=scenario.timeline.to_dict(),
        retries_after_503=retries,
        labels_sent=labels_sent,
        loops=loops,
        auth={"enabled": service.auth, "keys": keys.to_dict(), "checks": refusals},
        files=files,
    )
