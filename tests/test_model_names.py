"""The model name rule (one plain URL path segment) and the cap on what errors repeat."""

from __future__ import annotations

import string
from urllib.parse import quote, unquote, urljoin

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loopwatch.errors import (
    DETAIL_TEXT_LIMIT,
    ECHO_LIMIT,
    MESSAGE_LIMIT,
    InvalidInput,
    LoopwatchError,
    NotFound,
    cap_message,
    echo,
)
from loopwatch.records.names import check_model_name, is_model_name

ACCEPTED = ["churn", "churn-v2", "churn_2024.05", "a", "7", "A.b-c_d", "x" * 100, "churn.", "a..b"]
REFUSED = [
    "", ".", "..", "...", ".hidden", "-rm", "_x", "a/b", "a\\b", "a b", "%2e%2e", "a%2Fb", "a?b", "a#b",
    "a\x00b", "a\nb", "a\tb", "a\x7fb", "é", "ｃｈｕｒｎ", "churn²", "x" * 101, "a;b", "a:b", "a@b", "~a",
]


@pytest.mark.parametrize("name", ACCEPTED)
def test_plain_segments_are_accepted(name: str) -> None:
    assert is_model_name(name) and check_model_name(name) == name


@pytest.mark.parametrize("name", REFUSED)
def test_everything_else_is_refused(name: str) -> None:
    assert not is_model_name(name)
    with pytest.raises(InvalidInput, match="is not allowed: a model name is 1-100 ASCII letters"):
        check_model_name(name)


@pytest.mark.parametrize("value", [None, 3, b"churn", ["churn"]])
def test_a_name_must_be_text(value: object) -> None:
    assert not is_model_name(value)
    with pytest.raises(InvalidInput):
        check_model_name(value)


#: Mostly near-names (so that many are accepted), and any text.
NAMES = st.one_of(st.from_regex(r"[A-Za-z0-9._%/\\ ~-]{1,105}", fullmatch=True),
                  st.text(alphabet=st.characters(codec="utf-8"), max_size=120))


@given(NAMES)
def test_an_accepted_name_survives_every_url_handling_as_it_is(name: str) -> None:
    """What the rule is for: a client that quotes, unquotes or normalises the URL (RFC 3986
    dot segments) reaches the very same model, and the name holds no control character."""
    if not is_model_name(name):
        return
    assert quote(name, safe="") == name == unquote(name)
    base = "http://host/v1/models/"
    assert urljoin(base, f"{name}/predict") == f"{base}{name}/predict"
    assert name not in (".", "..") and not name.startswith(("-", "."))
    assert all(c in string.ascii_letters + string.digits + "._-" for c in name) and 1 <= len(name) <= 100


# --- what errors repeat ------------------------------------------------------------------------


def test_echo_keeps_short_values_as_repr_and_clips_long_ones() -> None:
    assert echo("churn") == "'churn'" and echo(3.5) == "3.5" and echo(None) == "None"
    long = "Z" * 10_000
    shown = echo(long)
    assert shown.startswith("'" + "Z" * ECHO_LIMIT + "'…") and "9,900 more characters" in shown
    assert len(shown) < ECHO_LIMIT + 40
    assert len(echo(list(range(5000)))) < ECHO_LIMIT + 40


def test_every_error_message_and_detail_is_capped_on_the_one_path() -> None:
    """A message built without echo (an f-string with the whole input) is capped when the
    error is made: the service's answer, the CLI's line and str(exc) all come from it."""
    long = "Z" * 10_000
    error = NotFound(f"no model named {long!r}, try another", detail={"name": long, "items": [long, 1, None],
                                                                        long: "as a key"})
    assert len(error.message) <= MESSAGE_LIMIT + 50 and str(error) == error.message
    assert error.message.startswith("no model named 'ZZZ") and error.message.endswith("try another")
    assert "Z" * (ECHO_LIMIT + 1) not in error.message and "more characters" in error.message
    # a long input with spaces in it is cut in the middle instead
    spaced = NotFound("bad value " + "word " * 3000 + "end")
    assert len(spaced.message) <= MESSAGE_LIMIT + 50 and "characters left out" in spaced.message
    assert spaced.message.endswith("end")
    assert len(error.detail["name"]) <= DETAIL_TEXT_LIMIT + 50
    assert error.detail["items"][1:] == [1, None] and len(error.detail["items"][0]) <= DETAIL_TEXT_LIMIT + 50
    assert all(len(k) <= DETAIL_TEXT_LIMIT + 50 for k in error.detail)
    assert len(str(error.to_dict())) < 2_000
    short = LoopwatchError("fine", detail={"a": [1, 2]})
    assert short.message == "fine" and short.detail == {"a": [1, 2]}
    assert cap_message("x " * (MESSAGE_LIMIT // 2)) == "x " * (MESSAGE_LIMIT // 2)
    assert cap_message("x" * 200) == "x" * 200 and cap_message("x" * 201).startswith("x" * 100 + "…(101 more")


def test_overlong_names_are_echoed_clipped() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_model_name("Z" * 10_000)
    assert "Z" * (ECHO_LIMIT + 1) not in caught.value.message and "9,900 more characters" in caught.value.message
