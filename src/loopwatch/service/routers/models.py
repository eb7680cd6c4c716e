"""Models and versions: list, inspect, promote, roll back, per-model settings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Path
from starlette.concurrency import run_in_threadpool

from loopwatch.records import ModelSettings
from loopwatch.service.schemas import (
    ERROR_RESPONSES,
    MAX_VERSION,
    AliasChangeOut,
    ModelDetailOut,
    ModelInfoOut,
    ModelVersionOut,
    PromoteIn,
    SettingsIn,
    SettingsModel,
)
from loopwatch.service.state import ServiceState, get_state

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)


@router.get("/models", response_model=list[ModelInfoOut], summary="List models")
async def list_models(state: ServiceState = Depends(get_state)) -> list[dict[str, Any]]:
    models = await run_in_threadpool(state.store.list_models)
    return [m.to_dict() for m in models]


@router.get("/models/{name}", response_model=ModelDetailOut, summary="A model with its versions")
async def get_model(name: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    def load() -> dict[str, Any]:
        versions = state.store.list_versions(name)
        info = next(m for m in state.store.list_models() if m.name == name)
        return {**info.to_dict(), "versions": [v.to_dict(with_schema=False) for v in versions]}

    return await run_in_threadpool(load)


@router.get(
    "/models/{name}/versions", response_model=list[ModelVersionOut], summary="A model's versions"
)
async def list_versions(name: str, state: ServiceState = Depends(get_state)) -> list[dict[str, Any]]:
    versions = await run_in_threadpool(state.store.list_versions, name)
    return [v.to_dict(with_schema=False) for v in versions]


@router.get(
    "/models/{name}/versions/{version}",
    response_model=ModelVersionOut,
    summary="One version, with its feature schema and holdout metrics",
)
async def get_version(
    name: str, version: int = Path(ge=1, le=MAX_VERSION), state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    found = await run_in_threadpool(state.store.get_model_version, name, version)
    return found.to_dict()


@router.post(
    "/models/{name}/promote",
    response_model=AliasChangeOut,
    summary="Point an alias (production by default) at a version; the candidate when none is named",
)
async def promote(
    name: str,
    body: PromoteIn = Body(default_factory=PromoteIn),
    state: ServiceState = Depends(get_state),
) -> dict[str, Any]:
    change = await run_in_threadpool(state.registry.promote, name, body.version, alias=body.alias)
    return change.to_dict()


@router.post(
    "/models/{name}/rollback",
    response_model=AliasChangeOut,
    summary="Return production to the version it held before its latest change",
)
async def rollback(name: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    change = await run_in_threadpool(state.registry.rollback, name)
    return change.to_dict()


@router.get("/models/{name}/settings", response_model=SettingsModel, summary="Per-model settings")
async def get_settings(name: str, state: ServiceState = Depends(get_state)) -> dict[str, Any]:
    found = await run_in_threadpool(state.registry.settings, name, fresh=True)
    return found.to_dict()


@router.put(
    "/models/{name}/settings",
    response_model=SettingsModel,
    summary="Set per-model settings: input logging (privacy), retention and features declared nullable",
)
async def put_settings(
    name: str, body: SettingsIn, state: ServiceState = Depends(get_state)
) -> dict[str, Any]:
    settings = ModelSettings(log_data=body.log_data, retention_days=body.retention_days,
                             nullable=tuple(body.nullable))
    stored = await run_in_threadpool(state.registry.update_settings, name, settings)
    return stored.to_dict()
