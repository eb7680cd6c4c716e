"""API keys, scopes and per-key limits (pure: the store is reached through callables)."""

from loopwatch.auth.keys import (
    SCOPES,
    TOKEN_PREFIX,
    ApiKey,
    check_key_id,
    check_scopes,
    generate_key,
    hash_token,
    parse_token,
    token_matches,
)
from loopwatch.auth.limits import BUDGET, RATE, LeaseLimiter, Verdict
from loopwatch.auth.verifier import KeyVerifier

__all__ = [
    "BUDGET",
    "RATE",
    "SCOPES",
    "TOKEN_PREFIX",
    "ApiKey",
    "KeyVerifier",
    "LeaseLimiter",
    "Verdict",
    "check_key_id",
    "check_scopes",
    "generate_key",
    "hash_token",
    "parse_token",
    "token_matches",
]
