"""``loopwatch.client`` against a stand-in of the events route: batching, retries with the
same ids, bounded buffering, trimming a refused batch, the decorator and the exit flush."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from loopwatch.client import Client
from loopwatch.demo.runner import free_port
from tests.client.standin import StandIn

ROOT = Path(__file__).resolve().parents[2]


def test_importing_the_client_loads_no_heavy_library() -> None:
    code = (
        "import sys, json; import loopwatch.client; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pandas','numpy','sklearn','scipy','fastapi','pydantic','httpx','starlette','loopwatch'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == ["loopwatch", "loopwatch.client", "loopwatch.client._client", "loopwatch.client._transport"]


def test_predictions_arrive_in_batches_with_unique_ids_and_utc_times() -> None:
    with StandIn() as server, Client(url=server.url, api_key="k-1", batch_size=40, client_version="svc-2") as client:
        ids = [
            client.log_prediction(model="fares", features={"distance": i, "carrier": i % 3}, prediction=0.5 * i,
                                  timestamp=datetime(2026, 3, 1, 12, tzinfo=timezone.utc) if i == 0 else 1_772_366_400 + i,
                                  model_version="ext-7", latency_ms=1.5)
            for i in range(100)
        ]
        assert client.flush(timeout=10)
        stats = client.stats()
    assert len(set(ids)) == 100
    assert (stats.sent, stats.duplicates, stats.dropped, stats.rejected, stats.buffered) == (100, 0, 0, 0, 0)
    assert all(path == "/v1/models/fares/events" and len(body["events"]) <= 40 for path, body in server.bodies)
    events = {e["request_id"]: e for e in server.events()}
    first = events[ids[0]]
    assert first["timestamp"] == "2026-03-01T12:00:00+00:00"
    assert events[ids[1]]["timestamp"] == "2026-03-01T12:00:01+00:00"
    assert (first["model_version"], first["client_version"], first["latency_ms"], first["row_index"]) == ("ext-7", "svc-2", 1.5, 0)


def test_a_busy_server_is_retried_after_retry_after_with_the_same_request_ids() -> None:
    with StandIn() as server:
        server.script.extend([(503, {"Retry-After": "0.3"}, None), (503, {"Retry-After": "0.3"}, None)])
        with Client(url=server.url, batch_size=10) as client:
            started = time.monotonic()
            for i in range(10):
                client.log_prediction(model="m", features={"x": i}, prediction=i)
            assert client.flush(timeout=10)
            took = time.monotonic() - started
            stats = client.stats()
    assert took >= 0.6, "the client waited as Retry-After asked"
    assert stats.retries == 2 and stats.sent == 10
    sent = [[e["request_id"] for e in body["events"]] for _, body in server.bodies]
    assert len(sent) == 3 and sent[0] == sent[1] == sent[2]


def test_a_retry_of_an_already_stored_batch_counts_duplicates_not_new_rows() -> None:
    with StandIn() as server, Client(url=server.url) as client:
        for i in range(5):
            client.log_prediction(model="m", features={"x": i}, prediction=i, request_id=f"order-{i}")
        client.flush()
        for i in range(5):  # the same ids again, as after an answer lost on the way back
            client.log_prediction(model="m", features={"x": i}, prediction=i, request_id=f"order-{i}")
        client.flush()
        stats = client.stats()
    assert (stats.sent, stats.duplicates) == (5, 5) and len(server.events()) == 5


def test_with_loopwatch_down_the_caller_never_waits_and_the_buffer_is_bounded() -> None:
    port = free_port()  # nothing listens there yet
    client = Client(url=f"http://127.0.0.1:{port}", max_buffered=50, batch_size=10, flush_interval=0.05)
    started = time.perf_counter()
    for i in range(500):
        client.log_prediction(model="m", features={"x": i}, prediction=i)
    assert time.perf_counter() - started < 0.5
    time.sleep(0.5)
    stats = client.stats()
    assert stats.dropped >= 500 - 50 - 10 and stats.buffered <= 60 and stats.retries >= 1
    assert "Connection" in (stats.last_error or "")
    # the service comes up on that port: what was kept is delivered, with its ids
    with StandIn(port=port) as server:
        assert client.flush(timeout=15)
        stats = client.stats()
        assert stats.sent == len(server.events()) == 500 - stats.dropped
    client.close(timeout=1)


def test_close_with_loopwatch_down_returns_within_its_timeout_and_counts_the_unsent() -> None:
    client = Client(url=f"http://127.0.0.1:{free_port()}", flush_interval=0.05)
    for i in range(20):
        client.log_prediction(model="m", features={"x": i}, prediction=i)
    started = time.monotonic()
    stats = client.close(timeout=0.5)
    assert time.monotonic() - started < 2.0
    assert stats.failed == 20 and stats.sent == 0
    client.log_prediction(model="m", features={"x": 1}, prediction=1)
    assert client.stats().dropped == 1, "a closed client drops and counts"


def test_a_refused_event_is_left_out_and_the_rest_of_its_batch_sent_again() -> None:
    problems = {"error": {"status": 422, "code": "schema_violation", "message": "bad events",
                          "detail": {"problems": [{"event": 3, "field": "features.x", "problem": "not a number"}]}}}
    with StandIn() as server:
        server.script.append((422, {}, problems))
        with Client(url=server.url, batch_size=10) as client:
            for i in range(10):
                client.log_prediction(model="m", features={"x": i}, prediction=i, request_id=f"r{i}")
            assert client.flush()
            stats = client.stats()
    assert (stats.sent, stats.rejected) == (9, 1) and "not a number" in (stats.last_error or "")
    assert sorted(e["request_id"] for e in server.events()) == sorted(f"r{i}" for i in range(10) if i != 3)


def test_a_client_error_without_named_events_rejects_the_batch_and_is_not_retried() -> None:
    with StandIn() as server:
        server.script.append((403, {}, {"error": {"status": 403, "code": "forbidden", "message": "needs ingest"}}))
        with Client(url=server.url) as client:
            client.log_prediction(model="m", features={"x": 1}, prediction=1)
            client.flush()
            stats = client.stats()
    assert (stats.rejected, stats.retries, len(server.bodies)) == (1, 0, 1)
    assert stats.last_error == "403 forbidden: needs ingest"


def test_the_decorator_times_and_logs_each_call_and_passes_errors_through() -> None:
    with StandIn() as server, Client(url=server.url) as client:

        @client.monitored(model="fares", model_version="gbm-3")
        def predict(features: dict, *, scale: float = 1.0) -> float:
            if features["distance"] < 0:
                raise ValueError("negative distance")
            time.sleep(0.02)
            return features["distance"] * scale

        assert predict({"distance": 10}, scale=2.0, request_id="order-9", entity_id="cust-1") == 20.0
        with pytest.raises(ValueError, match="negative"):
            predict({"distance": -1})
        client.flush()
    (event,) = server.events()
    assert (event["request_id"], event["entity_id"], event["prediction"], event["model_version"]) == (
        "order-9", "cust-1", 20.0, "gbm-3")
    assert 20 <= event["latency_ms"] < 1000
    assert predict.__name__ == "predict"


def test_labels_and_business_metrics_go_to_their_routes() -> None:
    with StandIn() as server, Client(url=server.url) as client:
        client.log_label(model="fares", request_id="r1", label=3.5, label_time="2026-03-02T00:00:00Z")
        client.log_label(model="fares", entity_id="cust-1", label=1.0, label_time=1_772_409_600)
        client.log_business_metric(name="revenue", value=12.5, timestamp=datetime(2026, 3, 2), segment="eu")
        client.flush()
        with pytest.raises(ValueError, match="request_id or by entity_id"):
            client.log_label(model="fares", label=1)
    bodies = dict(server.bodies)
    assert bodies["/v1/feedback"] == {"model": "fares", "labels": [
        {"label": 3.5, "label_time": "2026-03-02T00:00:00Z", "request_id": "r1", "row_index": 0},
        {"label": 1.0, "label_time": "2026-03-02T00:00:00+00:00", "entity_id": "cust-1"}]}
    assert bodies["/v1/business-metrics"] == {"observations": [
        {"name": "revenue", "value": 12.5, "timestamp": "2026-03-02T00:00:00+00:00", "segment": "eu"}]}


def test_what_is_buffered_at_exit_is_sent_by_the_exit_flush() -> None:
    with StandIn() as server:
        script = textwrap.dedent(f"""
            from loopwatch.client import Client
            client = Client(url={server.url!r}, flush_interval=60)
            for i in range(30):
                client.log_prediction(model="m", features={{"x": i}}, prediction=i)
            # no flush, no close: the interpreter's exit sends them
        """)
        subprocess.run([sys.executable, "-c", script], check=True, timeout=30, cwd=ROOT)
        assert len(server.events()) == 30


def test_bad_settings_are_refused_when_the_client_is_made() -> None:
    with pytest.raises(ValueError, match="url"):
        Client(url="loopwatch:8000")
    with pytest.raises(ValueError, match="batch_size"):
        Client(url="http://127.0.0.1:1", batch_size=0)


def test_numpy_values_are_sent_and_a_record_json_cannot_hold_is_rejected_alone() -> None:
    import numpy as np

    with StandIn() as server, Client(url=server.url) as client:
        client.log_prediction(model="m", features={"x": np.int64(3), "y": np.float32(0.5)},
                              prediction=np.array([1.5, 2.5]), request_id="numpy")
        client.log_prediction(model="m", features={"x": float("nan")}, prediction=1, request_id="nan")
        client.log_prediction(model="m", features={"x": object()}, prediction=1, request_id="object")
        client.log_prediction(model="m", features={"x": 1}, prediction=1, request_id="plain")
        assert client.flush()
        stats = client.stats()
        events = {e["request_id"]: e for e in server.events()}
    assert set(events) == {"numpy", "plain"} and (stats.sent, stats.rejected) == (2, 2)
    assert events["numpy"]["features"] == {"x": 3, "y": 0.5} and events["numpy"]["prediction"] == [1.5, 2.5]


def test_a_batch_over_the_body_limit_is_sent_in_halves() -> None:
    too_large = {"error": {"status": 413, "code": "payload_too_large", "message": "body over the limit"}}
    with StandIn() as server:
        server.script.extend([(413, {}, too_large), (413, {}, too_large)])
        with Client(url=server.url, batch_size=8) as client:
            for i in range(8):
                client.log_prediction(model="m", features={"x": i}, prediction=i)
            assert client.flush()
            stats = client.stats()
    assert [len(body["events"]) for _, body in server.bodies] == [8, 4, 2, 2, 4]
    assert (stats.sent, stats.rejected) == (8, 0)


def test_an_id_reused_with_other_content_is_left_out_when_the_conflict_names_it() -> None:
    conflict = {"error": {"status": 409, "code": "conflict", "message": "request id reused",
                          "detail": {"problems": [{"event": 0, "field": "request_id", "problem": "stored with other content"}]}}}
    with StandIn() as server:
        server.script.append((409, {}, conflict))
        with Client(url=server.url) as client:
            client.log_prediction(model="m", features={"x": 1}, prediction=1, request_id="reused")
            client.log_prediction(model="m", features={"x": 2}, prediction=2, request_id="fresh")
            assert client.flush()
            stats = client.stats()
    assert [e["request_id"] for e in server.events()] == ["fresh"] and (stats.sent, stats.rejected) == (1, 1)


def test_a_forked_worker_sends_its_own_records_under_fresh_request_ids() -> None:
    with StandIn() as server:
        script = textwrap.dedent(f"""
            import os
            from loopwatch.client import Client
            client = Client(url={server.url!r})
            client.log_prediction(model="m", features={{"x": 0}}, prediction=0)
            assert client.flush(timeout=10)
            pid = os.fork()
            client.log_prediction(model="m", features={{"x": 1 if pid == 0 else 2}}, prediction=1)
            assert client.flush(timeout=10)
            if pid == 0:
                os._exit(0)
            assert os.waitpid(pid, 0)[1] == 0
        """)
        subprocess.run([sys.executable, "-c", script], check=True, timeout=60, cwd=ROOT)
        events = server.events()
    assert sorted(e["features"]["x"] for e in events) == [0, 1, 2]
    prefixes = {e["request_id"].rsplit("-", 1)[0] for e in events}
    assert len(prefixes) == 2, "the child's ids do not repeat its parent's"
