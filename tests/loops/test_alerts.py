"""Webhook alerts against a real HTTP receiver on loopback, with claims in a real SQLite store."""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from loopwatch.application.alerts import MAX_CLAIM_KEY, alert_key, alert_payload, deliver_alerts, user_agent
from loopwatch.loops.monitoring_config import MonitoringConfig
from loopwatch.records import IncidentRecord
from loopwatch.stores import open_store
from tests.loops.receivers import Receiver, closed_port_url, serve_receiver

UTC = timezone.utc
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
COOLDOWN = 3600.0
FAST = {"backoff_seconds": 0.01, "timeout_seconds": 2.0}


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve_receiver() as running:
        yield running


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "alerts.db"


@pytest.fixture
def store(db: Path):  # type: ignore[no-untyped-def]
    opened = open_store(f"sqlite:///{db}", sqlite_synchronous="NORMAL")
    yield opened
    opened.close()


def incident(incident_id: str = "churn:covariate_shift:2026-03-01", **changes: object) -> IncidentRecord:
    fields = dict(
        incident_id=incident_id,
        model_name="churn",
        kind="covariate_shift",
        loop="eda",
        status="open",
        first_seen=T0 - timedelta(days=1),
        last_seen=T0,
        detected_at=T0,
        summary="tenure_months drifted (KS p=1e-9)",
        evidence={"features": ["tenure_months"], "p_value": 1e-9},
        action="Explore the new tenure mix before retraining.",
    )
    fields.update(changes)
    return IncidentRecord(**fields)  # type: ignore[arg-type]


def config(*urls: str, cooldown: float = COOLDOWN) -> MonitoringConfig:
    return MonitoringConfig(webhooks=list(urls), alert_cooldown_seconds=cooldown)


def open_incidents(store) -> list[IncidentRecord]:  # type: ignore[no-untyped-def]
    return store.list_incidents("churn", status="open")


def test_a_new_incident_is_sent_once_then_again_after_the_cooldown(store, receiver: Receiver) -> None:
    store.upsert_incident(incident())
    cfg = config(receiver.url)

    (first,) = deliver_alerts(store, open_incidents(store), cfg, now=T0, **FAST)
    assert first.sent and first.http_status == 204 and first.attempts == 1
    assert receiver.ids() == ["churn:covariate_shift:2026-03-01"]

    # the next evaluations within the cooldown send nothing
    for minutes in (1, 30, 59):
        (again,) = deliver_alerts(store, open_incidents(store), cfg, now=T0 + timedelta(minutes=minutes), **FAST)
        assert again.outcome == "cooldown"
    assert len(receiver.bodies) == 1

    # still open and unacknowledged once the cooldown has passed: sent again
    (later,) = deliver_alerts(store, open_incidents(store), cfg, now=T0 + timedelta(seconds=COOLDOWN), **FAST)
    assert later.sent
    assert receiver.ids() == ["churn:covariate_shift:2026-03-01"] * 2


def test_the_payload_names_what_happened_and_what_to_do(store, receiver: Receiver) -> None:
    record = store.upsert_incident(incident())
    deliver_alerts(store, [record], config(receiver.url), now=T0 + timedelta(minutes=5), **FAST)
    (body,) = receiver.bodies
    assert body == alert_payload(record, now=T0 + timedelta(minutes=5))
    assert body["model"] == "churn" and body["kind"] == "covariate_shift" and body["loop"] == "eda"
    assert body["summary"] == record.summary and body["action"] == record.action
    assert body["first_seen"] == "2026-03-01T09:00:00Z"
    assert body["incident_id"] == record.incident_id
    (headers,) = receiver.headers
    assert headers["user-agent"] == user_agent() and user_agent().startswith("loopwatch/")
    assert headers["content-type"] == "application/json"


def test_an_acknowledged_incident_is_never_sent(store, receiver: Receiver) -> None:
    store.upsert_incident(incident())
    store.acknowledge_incident("churn:covariate_shift:2026-03-01", by="ana", at=T0, note="on it")
    acknowledged = store.get_incident("churn:covariate_shift:2026-03-01")
    for hours in (0, 2, 48):
        (result,) = deliver_alerts(store, [acknowledged], config(receiver.url), now=T0 + timedelta(hours=hours))
        assert result.outcome == "acknowledged"
    assert receiver.hits == 0
    # nor is it among the open incidents the scheduler alerts on
    assert open_incidents(store) == []


def test_acknowledging_between_two_alerts_stops_them(store, receiver: Receiver) -> None:
    store.upsert_incident(incident())
    deliver_alerts(store, open_incidents(store), config(receiver.url), now=T0, **FAST)
    store.acknowledge_incident("churn:covariate_shift:2026-03-01", by="ana", at=T0 + timedelta(minutes=1))
    # the next evaluation sees the incident again: it stays acknowledged and is not sent
    store.upsert_incident(incident(last_seen=T0 + timedelta(days=1)))
    record = store.get_incident("churn:covariate_shift:2026-03-01")
    assert record.status == "acknowledged"
    (result,) = deliver_alerts(store, [record], config(receiver.url), now=T0 + timedelta(days=2), **FAST)
    assert result.outcome == "acknowledged" and receiver.hits == 1


def test_every_webhook_gets_its_own_alert_and_cooldown(store, receiver: Receiver) -> None:
    store.upsert_incident(incident())
    with serve_receiver("/second") as other, serve_receiver("/third") as third:
        results = deliver_alerts(store, open_incidents(store), config(receiver.url, other.url), now=T0, **FAST)
        assert [r.outcome for r in results] == ["sent", "sent"]
        assert len(receiver.bodies) == 1 and len(other.bodies) == 1
        # a webhook added later gets the incident although the first one is cooling down
        results = deliver_alerts(store, open_incidents(store), config(receiver.url, third.url),
                                 now=T0 + timedelta(minutes=1), **FAST)
        assert [r.outcome for r in results] == ["cooldown", "sent"]
        assert len(third.bodies) == 1


def test_a_receiver_answering_500_is_retried_then_logged(
    store, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.status = 500
    store.upsert_incident(incident())
    with caplog.at_level(logging.WARNING, logger="loopwatch.application.alerts"):
        (result,) = deliver_alerts(store, open_incidents(store), config(receiver.url), now=T0, **FAST)
    assert result.outcome == "failed" and result.http_status == 500
    assert result.attempts == 3 and receiver.hits == 3  # the first attempt and two retries
    assert "the receiver answered 500" in caplog.text
    assert "T0KEN" not in caplog.text  # the path of a webhook URL may be a secret


def test_a_refusing_receiver_is_not_asked_again(store, receiver: Receiver) -> None:
    receiver.status = 404
    store.upsert_incident(incident())
    (result,) = deliver_alerts(store, open_incidents(store), config(receiver.url), now=T0, **FAST)
    assert result.outcome == "failed" and result.attempts == 1 and receiver.hits == 1


def test_a_receiver_that_is_down_or_slow_does_not_raise(store, receiver: Receiver) -> None:
    store.upsert_incident(incident())
    down = closed_port_url()
    receiver.delay = 1.0
    results = deliver_alerts(store, open_incidents(store), config(down, receiver.url), now=T0,
                             backoff_seconds=0.01, timeout_seconds=0.2)
    assert [r.outcome for r in results] == ["failed", "failed"]
    assert "ConnectError" in (results[0].error or "")
    assert "Timeout" in (results[1].error or "") and results[1].attempts == 3


def test_a_broken_store_does_not_raise(store, receiver: Receiver) -> None:
    record = store.upsert_incident(incident())
    store.close()

    class Gone:
        def claim(self, *args: object, **kwargs: object) -> bool:
            raise OSError("disk vanished")

    (result,) = deliver_alerts(Gone(), [record], config(receiver.url), now=T0)
    assert result.outcome == "failed" and "disk vanished" in (result.error or "")
    assert receiver.hits == 0


def test_nothing_to_send_without_webhooks(store) -> None:
    store.upsert_incident(incident())
    assert deliver_alerts(store, open_incidents(store), MonitoringConfig(), now=T0) == []


def test_long_urls_and_ids_still_fit_a_claim_key(store, receiver: Receiver) -> None:
    long_url = receiver.url + "?" + "x" * 1500
    long_id = "churn:" + "y" * 480
    assert len(alert_key(receiver.url, "a")) < MAX_CLAIM_KEY
    assert alert_key(receiver.url, "a") == f"alert:{receiver.url}:a"
    key = alert_key(long_url, long_id)
    assert len(key) <= MAX_CLAIM_KEY and key != alert_key(long_url, long_id + "z")
    record = store.upsert_incident(incident(long_id))
    assert deliver_alerts(store, [record], config(long_url), now=T0, **FAST)[0].sent
    assert deliver_alerts(store, [record], config(long_url), now=T0, **FAST)[0].outcome == "cooldown"


def test_a_client_can_be_handed_in(store, receiver: Receiver) -> None:
    store.upsert_incident(incident())
    with httpx.Client(timeout=1.0) as client:
        (result,) = deliver_alerts(store, open_incidents(store), config(receiver.url), now=T0, client=client)
        assert not client.is_closed
    assert result.sent and receiver.headers[0]["user-agent"] == user_agent()


def test_two_workers_on_one_file_send_each_alert_exactly_once(db: Path, store, receiver: Receiver) -> None:
    """Two threads, each with its own connection to the same SQLite file, deliver the same
    incidents at the same moment: the claim lets exactly one of them send each."""
    ids = [f"churn:covariate_shift:2026-02-{day:02d}" for day in range(1, 21)]
    for incident_id in ids:
        store.upsert_incident(incident(incident_id))
    records = {i: store.get_incident(i) for i in ids}
    cfg = config(receiver.url)
    barrier = threading.Barrier(2)
    outcomes: list[list[str]] = [[], []]
    failures: list[BaseException] = []

    def worker(slot: int) -> None:
        own = open_store(f"sqlite:///{db}", sqlite_synchronous="NORMAL")
        try:
            for incident_id in ids:
                barrier.wait(timeout=10)
                (result,) = deliver_alerts(own, [records[incident_id]], cfg, now=T0, **FAST)
                outcomes[slot].append(result.outcome)
        except BaseException as exc:  # surfaced below: a thread cannot fail the test itself
            failures.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not failures
    assert sorted(receiver.ids()) == sorted(ids)  # each incident exactly once
    for first, second in zip(*outcomes):
        assert sorted([first, second]) == ["cooldown", "sent"]
