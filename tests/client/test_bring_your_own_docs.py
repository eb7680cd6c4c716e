"""docs/bring-your-own.md: its Python examples run as written (against a stand-in of the
service's routes, on the port the page shows), and its table of the client's API is the API."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from loopwatch.client import Client, ClientStats
from tests.client.standin import StandIn

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "bring-your-own.md"


def test_the_python_examples_run_as_written() -> None:
    text = PAGE.read_text()
    blocks = [part.split("```", 1)[0] for part in text.split("```python\n")[1:]]
    assert len(blocks) == 2
    with StandIn() as server:
        for block in blocks:
            assert "http://127.0.0.1:8000" in block
            code = block.replace("http://127.0.0.1:8000", server.url)
            exec(compile(code, str(PAGE.relative_to(ROOT)), "exec"), {})  # each block asserts what it shows
        events = server.events()
    assert {e["request_id"] for e in events} >= {"order-18"} and len(events) == 2


def test_the_documented_api_is_the_clients_api() -> None:
    text = PAGE.read_text()
    rows = re.findall(r"^\| `(\w+)\((\*, [^)]*)\)", text, flags=re.MULTILINE)
    documented = {name: [p.split("=")[0].strip() for p in params.split(",")[1:]] for name, params in rows}
    assert set(documented) == {"Client", "log_prediction", "log_label", "log_business_metric", "monitored",
                               "flush", "close"}
    for name, params in documented.items():
        target = Client.__init__ if name == "Client" else getattr(Client, name)
        actual = [p for p in inspect.signature(target).parameters if p != "self"]
        assert params == actual, name
        assert all(p.kind is p.KEYWORD_ONLY for n, p in inspect.signature(target).parameters.items() if n != "self")
    for field in ClientStats.__dataclass_fields__:
        assert f"`{field}`" in text, field


def test_the_readme_links_the_page() -> None:
    assert "(docs/bring-your-own.md)" in (ROOT / "README.md").read_text()
