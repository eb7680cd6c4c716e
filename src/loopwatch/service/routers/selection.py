"""Data collection and model selection: the labelling queue, retraining, the quarantine of
screened training rows, the promotion gate."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt
from starlette.concurrency import run_in_threadpool

from loopwatch.records.period import Period
from loopwatch.records.jsonutil import dumps
from loopwatch.service.schemas import ERROR_RESPONSES, MAX_VERSION
from loopwatch.service.state import ServiceState, get_state

router = APIRouter(tags=["model selection"], responses=ERROR_RESPONSES)

#: Largest labelling budget one request may ask for.
MAX_BUDGET = 100_000
#: Most quarantined rows one page lists, and most ids one release names.
MAX_QUARANTINE_PAGE = 10_000
MAX_RELEASE_IDS = 10_000

# strict: a flag that promotes a model must not be "yes", nor a count "1000" or 1000.0
Number = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Version = Annotated[int, Field(strict=True, ge=1, le=MAX_VERSION)]
Seed = Annotated[StrictInt, Field(ge=0, le=2**32 - 1)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RetrainIn(_In):
    since: datetime | None = Field(None, description="Event time from (inclusive), with timezone.")
    until: datetime | None = Field(None, description="Event time to (exclusive), with timezone.")
    include_reference: StrictBool = Field(True, description="Also train on the production version's reference sample.")
    estimator: str | None = Field(None, max_length=100, description="Production's estimator when absent.")
    seed: Seed = 0
    min_rows: StrictInt = Field(200, ge=10, le=10_000_000, description="Fewest usable labelled rows to train on.")
    adversarial_share: Number = Field(
        0.0, ge=0, le=0.5,
        description="Adversarial training: attack this share of the screened training rows against production and "
                    "add the flipped rows with their true labels (classifiers with numeric features; 0 is off).",
    )


class GateIn(_In):
    since: datetime | None = Field(None, description="Event time from (inclusive), with timezone.")
    until: datetime | None = Field(None, description="Event time to (exclusive), with timezone.")
    metric: Literal["accuracy", "f1", "roc_auc", "log_loss", "mae", "rmse"] | None = Field(
        None, description="accuracy for classifiers and mae for regressors when absent."
    )
    margin: Number = Field(0.0, ge=-1e6, le=1e6, description="Loss of metric tolerated; 0 asks for a better candidate.")
    confidence: Number = Field(0.95, ge=0.5, lt=1)
    latency_budget_ms: Number | None = Field(None, gt=0, le=1e7, description="Most p95 milliseconds allowed.")
    candidate: Version | None = Field(None, description="The candidate alias when absent.")
    n_boot: StrictInt = Field(1000, ge=50, le=20_000)
    seed: Seed = 0
    promote: StrictBool = Field(False, description="Point production at the candidate when the gate passes.")


class ReleaseIn(_In):
    ids: list[Annotated[str, Field(min_length=3, max_length=220)]] = Field(
        ..., min_length=1, max_length=MAX_RELEASE_IDS,
        description="Quarantined rows to release, as REQUEST_ID:ROW_INDEX (all or none are released).",
    )
    by: str | None = Field(None, min_length=1, max_length=200, description="Who releases (else X-Client-ID).")


@router.get(
    "/models/{name}/labelling-queue",
    summary="Unlabelled predictions to send for labelling: a random share and the most informative",
    responses={200: {"content": {"application/json": {}, "text/csv": {}}}},
)
async def labelling_queue(
    name: str,
    budget: int = Query(100, ge=0, le=MAX_BUDGET, description="How many predictions to label."),
    since: datetime | None = Query(None, description="Event time from (inclusive), with timezone."),
    until: datetime | None = Query(None, description="Event time to (exclusive), with timezone."),
    random_share: float = Query(0.2, ge=0, le=1, description="Share chosen uniformly at random."),
    seed: int = Query(0, ge=0, le=2**32 - 1),
    format: Literal["json", "csv"] = Query("json"),
    state: ServiceState = Depends(get_state),
) -> Response:
    from loopwatch.application.labelling_queue import labelling_queue as build_queue

    period = Period(since=since, until=until)
    items = await run_in_threadpool(
        build_queue, state.store, state.registry, name, budget=budget, since=period.since,
        until=period.until, random_share=random_share, seed=seed,
    )
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["request_id", "row_index", "entity_id", "score", "random", "reasons"])
        for item in items:
            writer.writerow(
                [item.request_id, item.row_index, item.entity_id or "", f"{item.score:.6g}",
                 str(item.random).lower(), ";".join(item.reasons)]
            )
        return Response(
            buffer.getvalue(), media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}-labelling-queue.csv"'},
        )
    body = {
        "model": name,
        "budget": budget,
        "random_share": random_share,
        "n_random": sum(item.random for item in items),
        "items": [item.to_dict() for item in items],
    }
    return Response(dumps(body), media_type="application/json")


@router.post(
    "/models/{name}/retrain",
    status_code=201,
    summary="Train a candidate on the recent labelled window (screened) and register it as the candidate",
)
async def retrain(
    name: str, body: RetrainIn = Body(default_factory=RetrainIn), state: ServiceState = Depends(get_state)
) -> Response:
    from loopwatch.application.retraining import retrain_candidate

    period = Period(since=body.since, until=body.until)
    def run() -> dict[str, Any]:
        result = retrain_candidate(
            state.store, state.registry, name, since=period.since, until=period.until,
            include_reference=body.include_reference, estimator=body.estimator, seed=body.seed,
            min_rows=body.min_rows, adversarial_share=body.adversarial_share,
        )
        return result.to_dict()

    return Response(dumps(await run_in_threadpool(run)), status_code=201, media_type="application/json")


@router.post(
    "/models/{name}/gate",
    summary="Compare the candidate with production on the same labelled rows; promote when it passes",
    description=(
        "Both versions score the window's labelled predictions. The gate passes when the "
        "paired-bootstrap interval of (candidate - production) clears -margin and, with a "
        "latency budget, the candidate's p95 latency is within it. With `promote`, production "
        "then takes the candidate."
    ),
)
async def gate(
    name: str, body: GateIn = Body(default_factory=GateIn), state: ServiceState = Depends(get_state)
) -> Response:
    from loopwatch.application.retraining import compare_on_window, promote_if_passed

    period = Period(since=body.since, until=body.until)
    options: dict[str, Any] = {
        "since": period.since, "until": period.until, "metric": body.metric,
        "margin": body.margin, "confidence": body.confidence, "latency_budget_ms": body.latency_budget_ms,
        "candidate": body.candidate, "n_boot": body.n_boot, "seed": body.seed,
    }

    def run() -> dict[str, Any]:
        if body.promote:
            decision, change = promote_if_passed(state.store, state.registry, name, **options)
        else:
            decision, change = compare_on_window(state.store, state.registry, name, **options), None
        return {"decision": decision.to_dict(), "promoted": None if change is None else change.to_dict()}

    return Response(dumps(await run_in_threadpool(run)), media_type="application/json")


@router.get(
    "/models/{name}/quarantine",
    summary="Training rows the poisoning screens set aside, with their reasons",
    description=(
        "Rows of labelled windows that a retraining's screens quarantined (label flips, rows far "
        "from the reference, a skewed feedback source, a backdoor pattern), oldest first. "
        "`status=held` lists the rows training leaves out, `released` the ones put back, `all` both."
    ),
)
async def list_quarantine(
    name: str,
    status: Literal["held", "released", "all"] = Query("held"),
    limit: int = Query(1000, ge=1, le=MAX_QUARANTINE_PAGE, description="Rows per page."),
    offset: int = Query(0, ge=0, le=2**31, description="Rows to skip."),
    state: ServiceState = Depends(get_state),
) -> Response:
    from loopwatch.application import quarantine

    released = {"held": False, "released": True, "all": None}[status]
    body = await run_in_threadpool(
        quarantine.list_quarantine, state.store, state.registry, name, released=released, limit=limit, offset=offset
    )
    return Response(dumps({**body, "status": status}), media_type="application/json")


@router.post(
    "/models/{name}/quarantine/release",
    summary="Release quarantined rows: the next retraining trains on them again",
    description=(
        "All or none: an id that is not quarantined is a 404, and a row set aside by a certain "
        "check (a label that is not a class, a value the schema refuses) a 422. A release holds "
        "for the label the row has; a corrected label is screened afresh."
    ),
)
async def release_quarantine(
    name: str,
    body: ReleaseIn,
    x_client_id: str | None = Header(None, description="Who is calling (the releaser when by is absent)."),
    state: ServiceState = Depends(get_state),
) -> Response:
    from loopwatch.application import quarantine

    by = body.by or (x_client_id[:200] if x_client_id else None)
    released = await run_in_threadpool(quarantine.release, state.store, state.registry, name, body.ids, by=by)
    return Response(
        dumps({"model": name, "released": [entry.to_dict() for entry in released]}), media_type="application/json"
    )
