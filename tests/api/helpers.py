"""Helpers shared by the API tests (plain functions: fixtures live in conftest.py)."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx

from loopwatch.config import Settings
from loopwatch.application.workspace import Workspace

PREDICT = "/v1/models/churn/predict"


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    """The one error shape: ``{"error": {"status", "code", "message", "detail"?}}``."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert {"status", "code", "message"} <= set(error) <= {"status", "code", "message", "detail"}
    assert error["status"] == status
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def wait_for(predicate: Any, *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def rejections(client: Any, model: str | None = None) -> list[dict[str, Any]]:
    params = {"model": model} if model else {}
    response = client.get("/v1/rejections", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def wait_for_rejections(client: Any, count: int, model: str | None = None) -> list[dict[str, Any]]:
    """Rejections are written by the log writer off the request path: wait for ``count`` of them."""

    def enough() -> list[dict[str, Any]] | None:
        found = rejections(client, model)
        return found if len(found) >= count else None

    return wait_for(enough)


def metric_value(text: str, name: str, labels: dict[str, str] | None = None) -> float:
    """The value of one sample in Prometheus text output (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = labels or {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in wanted.items()):
                return float(sample.value)
    return 0.0


def copy_database(source: Path, target: Path) -> None:
    """Copy a SQLite database with the backup API (consistent even with a WAL beside it)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()


def workspace_on_copy(template: Path, settings: Settings) -> Iterator[Workspace]:
    """A workspace on the test's own database, a copy of ``template``."""
    assert settings.database_url.startswith("sqlite:///")
    copy_database(template, Path(settings.database_url[len("sqlite:///") :]))
    with Workspace(settings) as ws:
        yield ws


def send_until_killed(service: Any, send: Callable[[httpx.Client, int, int], None], acknowledged: Callable[[], int],
                      *, threads: int, per_thread: int = 2_000) -> None:
    """SIGKILL ``service`` while ``threads`` clients are sending to it.

    Each client calls ``send(http, worker, i)`` for i = 0, 1, ... until the kill (an HTTP
    error means the server is gone). The kill comes once ``acknowledged()`` reaches 60 and
    2.5 s have passed (30 s at most), so that many requests are in flight when it lands."""
    killed = threading.Event()

    def client(worker: int) -> None:
        with httpx.Client(base_url=service.url, timeout=httpx.Timeout(20.0, connect=5.0)) as http:
            for i in range(per_thread):
                if killed.is_set():
                    return
                try:
                    send(http, worker, i)
                except httpx.HTTPError:
                    return  # the server is gone

    running = [threading.Thread(target=client, args=(w,), daemon=True) for w in range(threads)]
    for thread in running:
        thread.start()
    started = time.monotonic()
    while time.monotonic() - started < 30:  # bounded: usually ~2.5 s
        if acknowledged() >= 60 and time.monotonic() - started >= 2.5:
            break
        time.sleep(0.05)
    os.kill(service.process.pid, signal.SIGKILL)
    killed.set()
    service.process.wait(timeout=30)
    assert service.process.returncode == -signal.SIGKILL
    for thread in running:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in running)
