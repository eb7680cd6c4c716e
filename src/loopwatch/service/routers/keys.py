"""/v1/keys: create (the token is answered once), list (never a token or hash), revoke. Admin only."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt
from starlette.concurrency import run_in_threadpool

from loopwatch.auth.keys import MAX_DAILY_BUDGET, MAX_EXPIRY_DAYS, MAX_RATE_PER_SECOND
from loopwatch.auth.manage import issue_key, key_view, list_keys, revoke_key
from loopwatch.service.auth import authenticated_key
from loopwatch.service.schemas import ERROR_RESPONSES
from loopwatch.service.state import ServiceState, get_state

router = APIRouter(tags=["keys"], responses=ERROR_RESPONSES)

Scope = Literal["predict", "ingest", "feedback", "read", "admin"]


class KeyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[\w.@:/ -]+$", description="Who the key is for.")
    scopes: list[Scope] = Field(min_length=1, max_length=5, description="What the key may do; admin may do all.")
    expires_days: Annotated[StrictInt, Field(ge=1, le=MAX_EXPIRY_DAYS)] | None = Field(
        None, description="Days until the key expires; never when absent."
    )
    rate_per_second: Annotated[StrictInt, Field(ge=1, le=MAX_RATE_PER_SECOND)] | None = Field(
        None, description="Requests per second across all workers; no limit when absent."
    )
    daily_budget: Annotated[StrictInt, Field(ge=1, le=MAX_DAILY_BUDGET)] | None = Field(
        None, description="Requests per UTC day across all workers; no budget when absent."
    )


class KeyOut(BaseModel):
    key_id: str
    name: str
    scopes: list[str]
    created_at: str
    created_by: str | None
    expires_at: str | None
    revoked_at: str | None
    rate_per_second: int | None
    daily_budget: int | None
    state: Literal["active", "expired", "revoked"]
    budget_used_today: int | None = Field(
        description="Requests granted to workers today (keys with a budget only)."
    )


class CreatedKeyOut(BaseModel):
    key: KeyOut
    token: str = Field(description="The key itself (lw_...). Shown this once: it is stored only as a hash.")


def _now() -> datetime:
    return datetime.now(timezone.utc)


@router.post("/keys", status_code=201, response_model=CreatedKeyOut, summary="Create an API key")
async def create_key(
    body: KeyIn, request: Request, state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    caller = authenticated_key(request)
    now = _now()

    def create() -> dict[str, Any]:
        key, token = issue_key(
            state.store,
            name=body.name,
            scopes=list(body.scopes),
            now=now,
            expires_days=body.expires_days,
            rate_per_second=body.rate_per_second,
            daily_budget=body.daily_budget,
            created_by=caller.key_id if caller is not None else None,
        )
        return {"key": key_view(state.store, key, now=now), "token": token}

    return await run_in_threadpool(create)


@router.get("/keys", response_model=list[KeyOut], summary="List API keys (never their tokens)")
async def get_keys(state: ServiceState = Depends(get_state)) -> list[dict[str, Any]]:
    return await run_in_threadpool(list_keys, state.store, now=_now())


@router.delete(
    "/keys/{key_id}",
    response_model=KeyOut,
    summary="Revoke an API key",
    description="The key stops working at once in this worker and within 5 seconds in the others. "
    "Its record stays, for the audit trail.",
)
async def delete_key(
    request: Request,
    key_id: str = Path(min_length=16, max_length=16, pattern="^[0-9a-f]{16}$"),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    found = await run_in_threadpool(revoke_key, state.store, key_id, now=_now())
    request.app.state.key_guard.forget(key_id)
    return found
