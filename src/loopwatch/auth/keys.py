"""API keys: generation, the stored record, verification and scopes.

A key is shown to its owner once, as a token ``lw_<key id>_<secret>``:

- ``lw_`` makes a leaked key recognisable (secret scanners, log greps);
- the key id (16 hex digits) is public: it names the key in lists, in the
  prediction log (the events' ``client_id``) and in alerts;
- the secret is 32 random bytes from :mod:`secrets`, URL-safe base64.

Only the SHA-256 of the whole token is stored. A fast hash is enough here,
unlike for passwords: the secret has 256 bits of entropy, so nobody can search
for a preimage of a stolen hash however fast the hash is, and slow KDFs (bcrypt,
argon2) only help against low-entropy secrets while costing milliseconds on
every request. The presented token's hash is compared with the stored one by
:func:`hmac.compare_digest`, so the time taken does not reveal how much of it
matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable

from loopwatch.errors import InvalidInput
from loopwatch.records.jsonutil import utc_iso

TOKEN_PREFIX = "lw_"
#: What each scope opens; ``admin`` opens everything (training, promotion, keys).
#: ``ingest`` logs predictions made elsewhere; it is apart from ``predict`` so that a key
#: for an external service cannot ask loopwatch's models, nor a predict key forge events.
SCOPES: tuple[str, ...] = ("predict", "ingest", "feedback", "read", "admin")
ADMIN = "admin"
#: Hex digits of a key id (64 random bits: unique without coordination).
KEY_ID_LENGTH = 16
#: Random bytes of a key's secret.
SECRET_BYTES = 32
_TOKEN = re.compile(r"lw_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_NAME = re.compile(r"[\w.@:/ -]{1,100}")
#: Upper bounds that keep a key's numbers sane (and inside a BIGINT).
MAX_RATE_PER_SECOND = 1_000_000
MAX_DAILY_BUDGET = 10**12
MAX_EXPIRY_DAYS = 3650


@dataclass(frozen=True, kw_only=True)
class ApiKey:
    """A stored key: what it may do, until when, and at what pace. Never the secret."""

    key_id: str
    name: str
    scopes: tuple[str, ...]
    #: SHA-256 (hex) of the whole token; kept out of repr and to_dict so it is never shown.
    token_sha256: str = field(repr=False)
    created_at: datetime
    created_by: str | None = None
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    #: Requests per second across every worker; None for no limit.
    rate_per_second: int | None = None
    #: Requests per UTC day across every worker; None for no budget.
    daily_budget: int | None = None

    def allows(self, scope: str) -> bool:
        return ADMIN in self.scopes or scope in self.scopes

    def state(self, now: datetime) -> str:
        """``active``, ``revoked`` or ``expired`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    @property
    def limited(self) -> bool:
        return self.rate_per_second is not None or self.daily_budget is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "name": self.name,
            "scopes": list(self.scopes),
            "created_at": _iso(self.created_at),
            "created_by": self.created_by,
            "expires_at": _iso(self.expires_at),
            "revoked_at": _iso(self.revoked_at),
            "rate_per_second": self.rate_per_second,
            "daily_budget": self.daily_budget,
        }


def check_scopes(scopes: Iterable[str]) -> tuple[str, ...]:
    """The scopes in their canonical order; an unknown or missing scope is refused."""
    given = list(scopes)
    if isinstance(scopes, str) or not all(isinstance(s, str) for s in given):
        raise InvalidInput("scopes must be a list of strings")
    unknown = sorted(set(given) - set(SCOPES))
    if unknown:
        raise InvalidInput(f"unknown scope(s) {unknown}: choose from {list(SCOPES)}")
    if not given:
        raise InvalidInput(f"a key needs at least one scope of {list(SCOPES)}")
    return tuple(s for s in SCOPES if s in given)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_token(token: str) -> str | None:
    """The key id of a well-formed token, else None (nothing is looked up for it)."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def token_matches(token: str, key: ApiKey) -> bool:
    """Whether ``token`` is ``key``'s, compared in constant time."""
    return hmac.compare_digest(hash_token(token), key.token_sha256)


def generate_key(
    *,
    name: str,
    scopes: Iterable[str],
    now: datetime,
    expires_in: timedelta | None = None,
    rate_per_second: int | None = None,
    daily_budget: int | None = None,
    created_by: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its token; the token is returned here once and stored nowhere."""
    if now.tzinfo is None:
        raise InvalidInput("now must carry a timezone")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInput("a key name is 1 to 100 letters, digits, spaces or . _ - @ : /")
    if expires_in is not None and not timedelta(0) < expires_in <= timedelta(days=MAX_EXPIRY_DAYS):
        raise InvalidInput(f"a key expires after more than 0 and at most {MAX_EXPIRY_DAYS} days")
    _check_positive(rate_per_second, "rate_per_second", MAX_RATE_PER_SECOND)
    _check_positive(daily_budget, "daily_budget", MAX_DAILY_BUDGET)
    key_id = secrets.token_hex(KEY_ID_LENGTH // 2)
    token = f"{TOKEN_PREFIX}{key_id}_{secrets.token_urlsafe(SECRET_BYTES)}"
    key = ApiKey(
        key_id=key_id,
        name=name,
        scopes=check_scopes(scopes),
        token_sha256=hash_token(token),
        created_at=now,
        created_by=created_by,
        expires_at=None if expires_in is None else now + expires_in,
        rate_per_second=rate_per_second,
        daily_budget=daily_budget,
    )
    return key, token


def check_key_id(key_id: str) -> str:
    if not isinstance(key_id, str) or not re.fullmatch(r"[0-9a-f]{16}", key_id):
        raise InvalidInput("a key id is 16 lowercase hex digits")
    return key_id


def _check_positive(value: int | None, what: str, most: int) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise InvalidInput(f"{what} must be a whole number from 1 to {most}")


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else utc_iso(moment)
