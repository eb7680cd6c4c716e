"""Register a model fitted elsewhere, or a monitor-only model whose predictions are made elsewhere.

What ``loopwatch register``, :meth:`loopwatch.Workspace.register` and
``POST /v1/models/{name}/register`` call. A fitted model arrives as a skops file
(or an object that is saved as one first). Its types beyond the defaults
(:func:`~loopwatch.models.artifacts.types_beyond_defaults`) must all be named in
``trust``, or the registration is refused with the list of the types and how to
trust them: a version that could not load is never stored. The model that builds
the reference profile is the one loaded back from those very bytes, through the same
checks every later load makes; the bytes are stored as given, so the version's
SHA-256 is the file's.
"""

from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from loopwatch.errors import IntegrityError, InvalidInput
from loopwatch.features.schema import Task
from loopwatch.models.artifacts import dump_model, load_model, sha256_hex, types_beyond_defaults
from loopwatch.models.registered import fitted_version, monitor_only_version
from loopwatch.records import ModelVersion
from loopwatch.registry.registry import Registry

#: How each front door tells its user to trust a type (the hint of the refusal).
TRUST_HINTS = {
    "cli": "name each with --trust TYPE",
    "library": "name each in trust=[...]",
    "service": "the service trusts only the types listed in its LOOPWATCH_TRUSTED_TYPES setting; "
               "its operator adds them there",
}


def check_trusted(artifact: bytes, trust: Sequence[str], *, via: str = "library") -> list[str]:
    """The artifact's types beyond the defaults, all of which ``trust`` names; else a refusal
    (422) listing those it does not, and how to trust them."""
    try:
        beyond = types_beyond_defaults(artifact)
    except IntegrityError as exc:  # a file sent for registration is the sender's to fix
        raise InvalidInput(exc.message) from exc
    refused = sorted(set(beyond) - set(trust))
    if refused:
        raise InvalidInput(
            f"the model artifact holds types that are not trusted: {', '.join(refused)}; "
            f"{TRUST_HINTS.get(via, TRUST_HINTS['library'])} (only for a file you trust: "
            "loading it runs their code)",
            detail={"untrusted_types": refused},
        )
    return beyond


def register_artifact(
    registry: Registry,
    name: str,
    artifact: bytes,
    *,
    reference: pd.DataFrame,
    target: str | None,
    holdout: pd.DataFrame | None = None,
    trust: Sequence[str] = (),
    task: Task | None = None,
    categorical: Sequence[str] = (),
    nullable: Sequence[str] = (),
    exclude: Sequence[str] = (),
    alias: str | None = None,
    client_id: str | None = None,
    seed: int = 0,
    via: str = "library",
) -> ModelVersion:
    """Register the skops file ``artifact`` as the next version of ``name``."""
    registry.check_name(name)
    needed = check_trusted(artifact, trust, via=via)
    try:
        estimator = load_model(artifact, expected_sha256=sha256_hex(artifact), trusted=needed)
    except IntegrityError as exc:
        raise InvalidInput(f"the artifact cannot be loaded: {exc.message}") from exc
    built = fitted_version(
        estimator, reference, target=target, holdout=holdout, task=task, categorical=categorical,
        nullable=nullable, exclude=exclude, trusted_types=needed, seed=seed,
    )
    return registry.register(name, built, client_id=client_id, alias=alias, artifact=artifact)


def register_fitted(
    registry: Registry,
    name: str,
    estimator: Any,
    *,
    reference: pd.DataFrame,
    target: str | None,
    trust: Sequence[str] = (),
    **options: Any,
) -> ModelVersion:
    """Register a fitted estimator object: saved with skops, then as :func:`register_artifact`."""
    try:
        artifact = dump_model(estimator)
    except Exception as exc:  # skops refuses objects it cannot describe, with several kinds
        raise InvalidInput(f"skops cannot save a {type(estimator).__name__}: {str(exc)[:300]}") from exc
    return register_artifact(registry, name, artifact, reference=reference, target=target, trust=trust,
                             **options)


def register_monitor_only(
    registry: Registry,
    name: str,
    *,
    reference: pd.DataFrame,
    prediction_column: str,
    target: str | None = None,
    probability_columns: Sequence[str] = (),
    probability_prefix: str | None = None,
    classes: Sequence[Any] = (),
    task: Task | None = None,
    categorical: Sequence[str] = (),
    nullable: Sequence[str] = (),
    exclude: Sequence[str] = (),
    alias: str | None = None,
    client_id: str | None = None,
    seed: int = 0,
) -> ModelVersion:
    """Register a version with no model: a schema and a reference of the external model's
    features, predictions, probabilities and labels (see
    :func:`~loopwatch.models.registered.monitor_only_version`)."""
    registry.check_name(name)
    built = monitor_only_version(
        reference, prediction_column=prediction_column, target=target, probability_columns=probability_columns,
        probability_prefix=probability_prefix, classes=classes, task=task, categorical=categorical,
        nullable=nullable, exclude=exclude, seed=seed,
    )
    return registry.register(name, built, client_id=client_id, alias=alias)
