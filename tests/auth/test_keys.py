"""Keys: a recognisable token, stored only as a hash, compared in constant time, scoped."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loopwatch.auth import keys as keys_module
from loopwatch.auth.keys import (
    SCOPES,
    ApiKey,
    check_scopes,
    generate_key,
    hash_token,
    parse_token,
    token_matches,
)
from loopwatch.errors import InvalidInput

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)


def _key(**kwargs) -> tuple[ApiKey, str]:  # type: ignore[no-untyped-def]
    return generate_key(**{"name": "web app", "scopes": ["predict"], "now": NOW, **kwargs})


def test_a_token_is_prefixed_names_its_key_and_is_stored_only_as_its_hash() -> None:
    key, token = _key(scopes=["read", "predict"])
    assert token.startswith("lw_") and len(token) == 3 + 16 + 1 + 43
    assert parse_token(token) == key.key_id
    assert key.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
    # the record carries no token, and shows no hash
    assert token not in repr(key) and key.token_sha256 not in repr(key)
    shown = str(key.to_dict())
    assert token not in shown and key.token_sha256 not in shown and "sha256" not in shown
    assert key.scopes == ("predict", "read")  # canonical order


def test_tokens_and_ids_do_not_repeat() -> None:
    made = [_key() for _ in range(200)]
    assert len({k.key_id for k, _ in made}) == 200
    assert len({t for _, t in made}) == 200
    # the secret part is 32 random bytes: 43 URL-safe characters, of many different kinds
    secrets_part = "".join(t.split("_", 2)[2] for _, t in made)
    assert len(set(secrets_part)) > 60


def test_a_token_matches_only_its_own_key() -> None:
    key, token = _key()
    other, other_token = _key()
    assert token_matches(token, key)
    assert not token_matches(other_token, key)
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    assert not token_matches(flipped, key)


def test_the_comparison_goes_through_compare_digest(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    key, token = _key()
    assert token_matches(token, key)
    assert calls == [(hash_token(token), key.token_sha256)]


@pytest.mark.parametrize(
    "token",
    [
        "",
        "lw_",
        "lw_0123456789abcdef",
        "lw_0123456789ABCDEF_" + "a" * 43,  # upper-case id
        "lw_0123456789abcde_" + "a" * 43,  # short id
        "lw_0123456789abcdef_" + "a" * 42,  # short secret
        "lw_0123456789abcdef_" + "a" * 44,
        "xx_0123456789abcdef_" + "a" * 43,
        "lw_0123456789abcdef_" + "a" * 42 + "=",
        "lw_0123456789abcdef_" + "a" * 42 + "\n",
        " lw_0123456789abcdef_" + "a" * 43,
    ],
)
def test_malformed_tokens_name_no_key(token: str) -> None:
    assert parse_token(token) is None


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_no_random_text_parses_unless_it_has_the_exact_shape(text: str) -> None:
    parsed = parse_token(text)
    if parsed is not None:
        assert text.startswith("lw_") and len(text) == 63 and text[3:19] == parsed


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=62), st.characters(codec="ascii"))
def test_changing_any_character_breaks_the_match(position: int, replacement: str) -> None:
    key, token = _key()
    changed = token[:position] + replacement + token[position + 1 :]
    assert token_matches(changed, key) == (changed == token)


def test_scopes_are_checked_and_admin_opens_everything() -> None:
    assert check_scopes(["admin", "read", "read"]) == ("read", "admin")
    for bad in ([], ["write"], "read", [1]):
        with pytest.raises(InvalidInput):
            check_scopes(bad)  # type: ignore[arg-type]
    reader, _ = _key(scopes=["read"])
    assert reader.allows("read") and not reader.allows("predict") and not reader.allows("admin")
    admin, _ = _key(scopes=["admin"])
    assert all(admin.allows(scope) for scope in SCOPES)


def test_expiry_and_revocation() -> None:
    key, _ = _key(expires_in=timedelta(days=30))
    assert key.expires_at == NOW + timedelta(days=30)
    assert key.state(NOW) == "active"
    assert key.state(NOW + timedelta(days=30) - timedelta(microseconds=1)) == "active"
    assert key.state(NOW + timedelta(days=30)) == "expired"
    revoked = ApiKey(**{**key.__dict__, "revoked_at": NOW + timedelta(days=1)})
    assert revoked.state(NOW + timedelta(days=2)) == "revoked"
    assert _key()[0].expires_at is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": ""},
        {"name": "x" * 101},
        {"name": "bad\x00name"},
        {"name": "new\nline"},
        {"expires_in": timedelta(0)},
        {"expires_in": timedelta(days=3651)},
        {"rate_per_second": 0},
        {"rate_per_second": True},
        {"rate_per_second": 1.5},
        {"daily_budget": -1},
        {"daily_budget": 10**13},
        {"now": datetime(2026, 1, 1)},
    ],
)
def test_bad_key_settings_are_refused(kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        _key(**kwargs)
