"""schemathesis against the app's own OpenAPI document, in process, with auth on.

Run 1 (an admin key, so every call gets past authentication): for every operation,
requests generated from the document (valid ones, and invalid ones: wrong types,
missing fields, values outside their bounds) must never get a 5xx, and every status
must be one the document lists for that operation. The ``name`` path parameter is
"churn" (a model that exists) for half of the generated requests, so the routes do
their real work and not only answer 404.

Run 2 (no key at all): every protected operation answers 401 in the one error shape,
whatever the request; the open ones (health, metrics) still answer.

Generation is seeded (``derandomize``) and kept to about a minute on a 2-core machine.
"""

from __future__ import annotations

import re
from typing import Any, Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis import strategies as st

from tests.api.auth_helpers import Issued, issue, secure_client
from tests.api.helpers import assert_error

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis is in the test extra")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.core.failures import FailureGroup  # noqa: E402
from schemathesis.specs.openapi.checks import status_code_conformance  # noqa: E402

BASE_URL = "http://testserver"
#: Generated requests per operation and generation mode (valid, invalid) with a key.
EXAMPLES_WITH_KEY = 25
#: Generated requests per operation without a key.
EXAMPLES_WITHOUT_KEY = 4
#: Headers that carry a key: stripped from generated requests, then set (or not) by the test.
KEY_HEADERS = {"authorization", "x-api-key"}
OPEN = {("GET", "/v1/health/live"), ("GET", "/v1/health/ready"), ("GET", "/metrics")}

FUZZ = settings(
    max_examples=EXAMPLES_WITH_KEY,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # a failure is reported as found, not shrunk
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def admin(trained) -> Issued:  # type: ignore[no-untyped-def]
    return issue(trained.store, "admin", name="schemathesis")


@pytest.fixture
def secure(settings, trained) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with secure_client(settings) as client:
        yield client


@pytest.fixture
def schema(secure: TestClient) -> Any:
    document = secure.get("/openapi.json")  # the API description is open
    assert document.status_code == 200
    return schemathesis.openapi.from_dict(document.json())


def operations(schema: Any) -> list[Any]:
    found = [result.ok() for result in schema.get_all_operations()]
    assert len(found) >= 30, "the document lost operations"
    return sorted(found, key=lambda op: (op.path, op.method))


def strategy(operation: Any, mode: Any, valid_rows: list[dict[str, Any]] | None = None) -> Any:
    generated = operation.as_strategy(generation_mode=mode)
    if "{name}" not in operation.path:
        return generated
    churn = {"name": "churn"}
    options = [generated, operation.as_strategy(generation_mode=mode, path_parameters=churn)]
    if valid_rows and operation.path.endswith("/predict") and mode is GenerationMode.POSITIVE:
        # rows that fit the model, so the generated headers and ids meet the real write path
        options.append(operation.as_strategy(generation_mode=mode, path_parameters=churn, body={"rows": valid_rows}))
    return st.one_of(*options)


def send(client: TestClient, case: Any, key: Issued | None) -> Any:
    """The generated request through the test client, with exactly the key we mean."""
    kwargs = case.as_transport_kwargs(base_url=BASE_URL)
    headers = {k: v for k, v in (kwargs.get("headers") or {}).items() if k.lower() not in KEY_HEADERS}
    if key is not None:
        headers.update(key.headers)
    request: dict[str, Any] = {"headers": headers, "params": kwargs.get("params") or None,
                               "cookies": kwargs.get("cookies") or None}
    if "json" in kwargs:
        request["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        data = kwargs["data"]
        request["content"] = data if isinstance(data, (bytes, str)) else None
        if not isinstance(data, (bytes, str)):
            request["data"] = data
    client.cookies.clear()
    return client.request(kwargs["method"], kwargs["url"], **request)


def test_with_an_admin_key_no_operation_answers_5xx_or_an_undocumented_status(
    secure: TestClient, schema: Any, admin: Issued, rows: list[dict[str, Any]]
) -> None:
    seen: dict[str, set[int]] = {}
    failures: list[str] = []
    for operation in operations(schema):
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @FUZZ
            @given(case=strategy(operation, mode, rows))
            def check(case: Any) -> None:
                response = send(secure, case, admin)
                seen.setdefault(operation.label, set()).add(response.status_code)
                case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
                assert response.status_code not in (401, 403), (operation.label, response.text[:300])

            try:
                check()
            except Unsatisfiable:
                # nothing to make invalid (no parameters, no body): only valid requests exist
                if mode is not GenerationMode.NEGATIVE:
                    raise
            except (AssertionError, FailureGroup) as exc:  # collected, reported together below
                failures.append(f"{operation.label} ({mode.value}): {str(exc)[:600]}")
    assert not failures, "\n\n".join(failures)
    assert len(seen) == len(operations(schema))
    # the key got every call past the door, and the fuzzing reached past validation somewhere
    assert not any({401, 403} & codes for codes in seen.values())
    assert sum(any(200 <= c < 300 for c in codes) for codes in seen.values()) >= 20, seen
    assert 200 in seen["POST /v1/models/{name}/predict"], seen


def test_without_a_key_every_protected_operation_answers_401(secure: TestClient, schema: Any) -> None:
    protected = 0
    for operation in operations(schema):
        is_open = (operation.method.upper(), operation.path) in OPEN

        @settings(FUZZ, max_examples=EXAMPLES_WITHOUT_KEY)
        @given(case=strategy(operation, GenerationMode.POSITIVE))
        def check(case: Any) -> None:
            response = send(secure, case, None)
            if is_open:
                assert response.status_code in (200, 503), (operation.label, response.status_code)
                return
            error = assert_error(response, 401, "unauthorized")
            assert "key" in error["message"].lower()
            assert response.headers["www-authenticate"].startswith("Bearer")

        check()
        protected += not is_open
    assert protected == len(operations(schema)) - len(OPEN)


def test_a_made_up_bearer_token_is_no_key(secure: TestClient, schema: Any) -> None:
    made_up = Issued(key_id="lw_nobody", token="lw_" + "x" * 40)
    for operation in operations(schema):
        if (operation.method.upper(), operation.path) in OPEN:
            continue
        url = re.sub(r"\{\w+\}", "churn", operation.path)
        response = secure.request(operation.method.upper(), BASE_URL + url, headers=made_up.headers)
        assert_error(response, 401, "unauthorized")
