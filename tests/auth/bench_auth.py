"""What API keys cost on the predict path (a measurement script; pytest does not collect it).

    .venv/bin/python tests/auth/bench_auth.py [--rounds 3] [--duration 6]

1. In process: ``KeyGuard.admit`` for a cached key without and with limits (the work
   every request does), a key lookup (a cache miss) and a usage claim (a store write);
   and whole predict requests through the app (httpx's ASGI transport, logging off),
   auth off vs on with a limited key.
2. Over HTTP with wrk: three ``loopwatch serve`` processes on copies of one trained
   database, auth off, auth on with an unlimited key, auth on with a limited key
   (2,000/s and 10,000,000 a day: leases of 200 and 100,000), durable logging on
   (``--no-logging``: off, so that the cost of the keys is not hidden by the commits);
   rounds alternate the order so drift in machine load hits every side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))


def in_process(n: int = 20_000) -> dict[str, float]:
    from loopwatch.auth.manage import issue_key
    from loopwatch.service.auth import KeyGuard
    from loopwatch.stores import open_store

    folder = Path(tempfile.mkdtemp())
    store = open_store(f"sqlite:///{folder / 'bench.db'}")
    now = datetime.now(timezone.utc)
    _, plain = issue_key(store, name="plain", scopes=["predict"], now=now)
    limited_key, limited = issue_key(
        store, name="limited", scopes=["predict"], now=now, rate_per_second=10**6, daily_budget=10**12
    )
    guard = KeyGuard()
    out: dict[str, float] = {}

    async def admit_many(token: str) -> float:
        await guard.admit(token, store)  # the first one looks the key up and claims leases
        started = time.perf_counter()
        for _ in range(n):
            await guard.admit(token, store)
        return (time.perf_counter() - started) / n * 1e6

    out["admit_cached_unlimited_us"] = asyncio.run(admit_many(plain))
    out["admit_cached_limited_us"] = asyncio.run(admit_many(limited))
    started = time.perf_counter()
    for _ in range(2000):
        store.get_api_key(limited_key.key_id)
    out["lookup_us"] = (time.perf_counter() - started) / 2000 * 1e6
    started = time.perf_counter()
    for window in range(10**10, 10**10 + 200):  # windows after the ones used above: each claim writes
        assert store.claim_key_usage(limited_key.key_id, kind="second", window=window, want=10, limit=100) == 10
    out["claim_ms_sqlite_full"] = (time.perf_counter() - started) / 200 * 1e3
    store.close()
    shutil.rmtree(folder, ignore_errors=True)
    return out


def through_asgi(n: int = 1500, rounds: int = 3) -> dict[str, float]:
    """Whole requests through the app in process (no network, logging off), auth off vs on:
    the difference is what the middleware and the scope dependency cost per request."""
    import httpx

    from loopwatch.auth.manage import issue_key
    from loopwatch.config import Settings
    from loopwatch.service import create_app
    from loopwatch.simulate import ChurnScenario
    from loopwatch.application.workspace import Workspace

    work = Path(tempfile.mkdtemp(prefix="bench-auth-asgi-"))
    data = ChurnScenario(seed=1).training_data(n=2000)
    row = {k: (v.item() if hasattr(v, "item") else v) for k, v in data.iloc[0].items() if k != "churned"}
    base = Settings.from_env({}, home=work, logging_enabled=False, schedule_enabled=False)
    with Workspace(base) as ws:
        ws.train("churn", data, target="churned")
        _, token = issue_key(ws.store, name="bench", scopes=["predict"], now=datetime.now(timezone.utc),
                             rate_per_second=10**6, daily_budget=10**12)
    sides = {"off": (base, {}), "on": (base.with_overrides(auth="on"), {"Authorization": f"Bearer {token}"})}

    async def run(settings: Settings, headers: dict[str, str]) -> list[float]:
        app = create_app(settings)
        times = []
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                for _ in range(100):  # warm up: the model is loaded, the key cached
                    await client.post("/v1/models/churn/predict", json={"rows": [row]}, headers=headers)
                for _ in range(rounds):
                    started = time.perf_counter()
                    for _ in range(n):
                        answer = await client.post("/v1/models/churn/predict", json={"rows": [row]}, headers=headers)
                        assert answer.status_code == 200, answer.text
                    times.append((time.perf_counter() - started) / n * 1e6)
        return times

    out = {side: statistics.median(asyncio.run(run(*args))) for side, args in sides.items()}
    shutil.rmtree(work, ignore_errors=True)
    return {"asgi_request_us_auth_off": round(out["off"], 1), "asgi_request_us_auth_on_limited": round(out["on"], 1)}


def over_http(rounds: int, duration: int, logging_enabled: bool = True) -> dict[str, dict[str, float]]:
    from _common import Service

    from loopwatch.auth.manage import issue_key
    from loopwatch.config import Settings
    from loopwatch.simulate import ChurnScenario
    from loopwatch.stores import open_store
    from loopwatch.application.workspace import Workspace

    work = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    template = work / "template.db"
    with Workspace(Settings.from_env({}, home=work, database=str(template))) as ws:
        ws.train("churn", ChurnScenario(seed=1).training_data(n=5000), target="churned")
        row = {k: v for k, v in ChurnScenario(seed=1).training_data(n=1).iloc[0].items() if k != "churned"}
    body = work / "body.json"
    body.write_text(json.dumps({"rows": [row]}, default=float))
    sides = {"off": ({}, None), "on, unlimited key": ({"LOOPWATCH_AUTH": "on"}, {}),
             "on, limited key": ({"LOOPWATCH_AUTH": "on"}, {"rate_per_second": 2000, "daily_budget": 10**7})}
    services, headers = {}, {}
    for i, (side, (env, limits)) in enumerate(sides.items()):
        database = work / f"side{i}.db"
        shutil.copy(template, database)
        if limits is not None:
            store = open_store(f"sqlite:///{database}")
            _, token = issue_key(store, name="bench", scopes=["predict"], now=datetime.now(timezone.utc), **limits)
            store.close()
            headers[side] = ["-H", f"Authorization: Bearer {token}"]
        else:
            headers[side] = []
        env = {**env, "LOOPWATCH_SCHEDULE_ENABLED": "0"}
        services[side] = Service(str(database), home=work / f"home{i}", log_path=work / f"serve{i}.log",
                                 extra_env=env, logging_enabled=logging_enabled)
        services[side].start()
    results: dict[str, list[dict[str, float]]] = {side: [] for side in sides}
    try:
        for r in range(rounds):
            order = list(sides) if r % 2 == 0 else list(reversed(sides))
            for side in order:
                url = f"{services[side].url}/v1/models/churn/predict"
                out = subprocess.run(
                    ["wrk", "-t2", "-c16", f"-d{duration}s", "--latency", *headers[side],
                     "-s", str(ROOT / "benchmarks" / "predict.lua"), url, "--", str(body), f"r{r}"],
                    capture_output=True, text=True, check=True,
                ).stdout
                line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
                data = json.loads(line[len("WRK_JSON "):])
                assert data["err_status"] == 0, (side, out)
                results[side].append({"rps": data["requests"] / (data["duration_us"] / 1e6),
                                      "p50_ms": data["p50_us"] / 1e3, "p99_ms": data["p99_us"] / 1e3})
    finally:
        for service in services.values():
            service.stop()
        shutil.rmtree(work, ignore_errors=True)
    return {side: {k: round(statistics.median(run[k] for run in runs), 2) for k in runs[0]}
            for side, runs in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--no-http", action="store_true")
    parser.add_argument("--no-logging", action="store_true", help="Durable logging off: the auth cost stands out.")
    args = parser.parse_args()
    print(json.dumps({"in_process": in_process(), "asgi": through_asgi()}, indent=2))
    if not args.no_http:
        print(json.dumps({"http_medians": over_http(args.rounds, args.duration, not args.no_logging)}, indent=2))


if __name__ == "__main__":
    main()
