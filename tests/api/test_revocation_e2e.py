"""A revocation holds for every request that starts after it returned, in every worker.

A real ``loopwatch serve`` with two uvicorn workers and auth on. Client threads fire
predict requests with a key without pause, over kept-alive connections and over a new
connection per request (so that both workers serve the key and cache it), while the key is
revoked: once with ``DELETE /v1/keys/{id}`` and once with ``loopwatch keys revoke`` in
another process. Every request's start is taken on the client just before it is sent; no
request that started after the revoke call returned may be answered 200.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import httpx
import pandas as pd
import pytest

from loopwatch.auth.manage import issue_key
from loopwatch.demo import ServiceProcess
from loopwatch.stores import open_store
from tests.api.helpers import PREDICT
from tests.conftest import churn_rows

pytestmark = pytest.mark.slow

#: Threads on kept-alive connections, and threads that open a connection per request.
KEPT, FRESH = 4, 2
#: Seconds of traffic before the revoke (once the key is in steady use) and after it.
BEFORE, AFTER = 1.0, 1.5


@dataclass(frozen=True)
class Sent:
    started: float
    status: int
    #: The worker process that answered (None for a connection closed before it was looked up).
    worker: int | None


class Workers:
    """Which uvicorn worker holds a client connection, read from /proc: the server's end of
    the connection is the socket whose peer is the client's port, and one worker holds it."""

    def __init__(self, parent: int, port: int) -> None:
        self.port = port
        deadline = time.monotonic() + 60
        while len(self._children(parent)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        self.pids = self._children(parent)
        self._known: dict[int, int | None] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _children(pid: int) -> list[int]:
        # uvicorn's workers; its other child is multiprocessing's resource tracker
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]

    def of(self, client_port: int) -> int | None:
        with self._lock:
            if client_port not in self._known:
                self._known[client_port] = self._look_up(client_port)
            return self._known[client_port]

    def _look_up(self, client_port: int) -> int | None:
        inode = None
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(a.split(":")[1], 16) for a in fields[1:3])
            if local == self.port and remote == client_port:
                inode = fields[9]
        if inode is None:
            return None
        for pid in self.pids:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    if os.readlink(fd) == f"socket:[{inode}]":
                        return pid
                except OSError:
                    continue
        return None


def _post(http: httpx.Client, body: dict, headers: dict[str, str], workers: Workers) -> tuple[int, int | None]:
    with http.stream("POST", PREDICT, json=body, headers=headers) as answer:
        client_port = answer.extensions["network_stream"].get_extra_info("socket").getsockname()[1]
        worker = workers.of(client_port)
        answer.read()
        return answer.status_code, worker


def _balanced_clients(url: str, workers: Workers) -> list[httpx.Client]:
    """KEPT kept-alive clients, half of them connected to each worker (the kernel hands a new
    connection to whichever worker accepts first, so a few are opened and closed until then)."""
    per_worker = {pid: 0 for pid in workers.pids}
    kept: list[httpx.Client] = []
    for _ in range(100):
        if len(kept) == KEPT:
            break
        http = httpx.Client(base_url=url, timeout=30.0)
        with http.stream("GET", "/v1/health/live") as answer:
            worker = workers.of(answer.extensions["network_stream"].get_extra_info("socket").getsockname()[1])
            answer.read()
        if worker is not None and per_worker[worker] < KEPT // 2:
            per_worker[worker] += 1
            kept.append(http)
        else:
            http.close()
    assert len(kept) == KEPT, per_worker
    return kept


def _fire_through(
    url: str, token: str, body: dict, revoke: Callable[[], None], workers: Workers
) -> tuple[list[Sent], float]:
    """Fire requests with ``token`` from every thread, call ``revoke`` once every worker is
    serving the key; return every request sent and the moment ``revoke`` returned."""
    sent: list[Sent] = []
    lock = threading.Lock()
    stop = threading.Event()
    headers = {"Authorization": f"Bearer {token}"}

    def record(started: float, status: int, worker: int | None) -> None:
        with lock:
            sent.append(Sent(started, status, worker))

    failures: list[BaseException] = []

    def kept(http: httpx.Client) -> None:
        try:
            while not stop.is_set():
                started = time.monotonic()
                record(started, *_post(http, body, headers, workers))
        except BaseException as exc:  # the test fails on it, below
            failures.append(exc)
        finally:
            http.close()

    def fresh() -> None:
        try:
            while not stop.is_set():
                with httpx.Client(base_url=url, timeout=30.0, headers={"Connection": "close"}) as http:
                    started = time.monotonic()
                    record(started, *_post(http, body, headers, workers))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=kept, args=(c,)) for c in _balanced_clients(url, workers)] + [
        threading.Thread(target=fresh) for _ in range(FRESH)
    ]
    for thread in threads:
        thread.start()
    try:
        # the first requests load the model in each worker: revoke once both serve the key
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and any(
            sum(s.status == 200 and s.worker == pid for s in list(sent)) < 3 for pid in workers.pids
        ):
            time.sleep(0.05)
        time.sleep(BEFORE)
        revoke()
        returned = time.monotonic()
        time.sleep(AFTER)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    assert not failures, failures
    return sent, returned


@pytest.fixture
def database(churn_database: str) -> str:
    """The shared "churn" database (SQLite path or PostgreSQL URL) of tests/api/conftest.py."""
    return churn_database


def _keys(database: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """An admin token, and a predict key (id, token) for each way of revoking."""
    store = open_store(database)
    try:
        now = datetime.now(timezone.utc)
        _, admin = issue_key(store, name="ops", scopes=["admin"], now=now)
        victims = {}
        for how in ("http", "cli"):
            key, token = issue_key(store, name=f"victim-{how}", scopes=["predict"], now=now)
            victims[how] = (key.key_id, token)
        return admin, victims
    finally:
        store.close()


def test_no_request_that_starts_after_a_revoke_returned_is_served(
    database: str, tmp_path: Path, churn_training: pd.DataFrame
) -> None:
    admin, victims = _keys(database)
    body = {"rows": churn_rows(churn_training, 1)}
    with ServiceProcess(database, workers=2, auth=True, log_path=tmp_path / "service.log") as service:
        assert service.process is not None
        workers = Workers(service.process.pid, service.port)
        assert len(workers.pids) == 2

        def over_http() -> None:
            key_id = victims["http"][0]
            answer = httpx.delete(f"{service.url}/v1/keys/{key_id}", headers={"X-API-Key": admin}, timeout=30)
            assert answer.status_code == 200 and answer.json()["state"] == "revoked", answer.text

        def from_the_cli() -> None:
            env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPWATCH_")}
            done = subprocess.run(
                [sys.executable, "-m", "loopwatch", "keys", "revoke", victims["cli"][0], "--database", database],
                env=env, capture_output=True, text=True, timeout=120,
            )
            assert done.returncode == 0 and "revoked" in done.stdout, done.stdout + done.stderr

        for how, revoke in (("http", over_http), ("cli", from_the_cli)):
            sent, returned = _fire_through(service.url, victims[how][1], body, revoke, workers)
            before = [s for s in sent if s.started < returned]
            after = [s for s in sent if s.started > returned]
            # the key was in use: served by each worker before the revoke, with no other answer
            for pid in workers.pids:
                assert sum(s.status == 200 and s.worker == pid for s in before) >= 5, (how, pid)
                assert sum(s.worker == pid for s in after) >= 5, (how, pid)
            assert {s.status for s in before} <= {200, 401}, how
            served_after = [s for s in after if s.status != 401]
            assert not served_after, (
                f"{how}: {len(served_after)} of {len(after)} requests that started after the revoke returned "
                f"were answered {sorted({s.status for s in served_after})} by workers "
                f"{sorted({s.worker or 0 for s in served_after})}, the last "
                f"{max(s.started for s in served_after) - returned:.3f} s after it"
            )
