"""A small local stand-in for the service's ingestion routes, for the client's pure-logic tests.

It keeps every body it was sent and answers from a script the test sets: a status per
attempt (e.g. 503 twice, then 200), and the idempotency of the contract (an event already
stored is counted as a duplicate). The real routes are tested against the real service.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class StandIn:
    def __init__(self, port: int = 0) -> None:
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        self.stored: dict[tuple[str, int], dict[str, Any]] = {}
        self.script: deque[tuple[int, dict[str, str], dict[str, Any] | None]] = deque()
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the name http.server calls
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, headers, answer = stand_in.answer(self.path, body, self.headers)
                raw = json.dumps(answer).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def answer(self, path: str, body: dict[str, Any], headers: Any) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self.lock:
            self.bodies.append((path, body))
            if self.script:
                status, extra, answer = self.script.popleft()
                if status != 200:
                    return status, extra, answer or {"error": {"status": status, "code": "scripted", "message": "no"}}
            if not path.endswith("/events"):
                return 200, {}, {"written": len(body.get("observations", body.get("labels", [])))}
            accepted = duplicates = 0
            for event in body["events"]:
                key = (event["request_id"], event["row_index"])
                if key in self.stored:
                    duplicates += 1
                else:
                    self.stored[key] = event
                    accepted += 1
            return 200, {}, {"model": path.split("/")[3], "accepted": accepted, "duplicates": duplicates,
                             "versions": {}, "authorization": headers.get("Authorization")}

    def events(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.stored.values())
