"""How active incidents change a day's rows: masks, shifts, new markets, broken clients.

Pure functions of the timeline and the rows' times, kept apart from the
scenario's orchestration so each effect can be read (and checked) on its own.
Time is in seconds after the day's midnight, as in :mod:`traffic`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from loopwatch.simulate import schema
from loopwatch.simulate.timeline import Incident
from loopwatch.simulate.traffic import ClientSpec


def active_mask(incident: Incident, day_start: datetime, offsets: np.ndarray) -> np.ndarray:
    """Which rows (by time) fall inside the incident's active window."""
    begin = (incident.start - day_start).total_seconds()
    end = incident.end
    finish = math.inf if end is None else (end - day_start).total_seconds()
    return (offsets >= begin) & (offsets < finish)


def new_country_share(
    incidents: Iterable[Incident], day_start: datetime, offsets: np.ndarray
) -> tuple[str, np.ndarray]:
    """The selection bias's country and each row's probability of coming from it."""
    country, share = "BR", np.zeros(len(offsets))
    for incident in incidents:
        mask = active_mask(incident, day_start, offsets)
        if mask.any():
            country = str(incident.touches["country"])
            share[mask] = incident.effect_size
    return country, share


def watch_hours_factor(incidents: Iterable[Incident], day_start: datetime, offsets: np.ndarray) -> np.ndarray:
    """Per-row multiplier of true watch time that moves its mean by ``effect_size`` sd.

    Scaling (rather than adding a constant) keeps watch time non-negative and
    mimics everyone watching proportionally more; since the stable-world mean
    and sd are known exactly, the factor is exact too.
    """
    factor = np.ones(len(offsets))
    for incident in incidents:
        sign = -1.0 if incident.params.get("direction") == "down" else 1.0
        step = sign * incident.effect_size * schema.WATCH_HOURS_SD / schema.WATCH_HOURS_MEAN
        factor[active_mask(incident, day_start, offsets)] *= 1.0 + step
    return factor


def software_changes(
    incidents: Iterable[Incident],
    *,
    clients: np.ndarray,
    known: Mapping[str, ClientSpec],
    day_start: datetime,
    offsets: np.ndarray,
    customers: pd.DataFrame,
) -> tuple[np.ndarray, pd.DataFrame]:
    """Each row's declared client version, and the rows as the clients send them.

    A client keeps the version of its deploy, and after the incident ends
    declares the fixed version (``params["fixed_version"]``, else its old one,
    i.e. a rollback). Only the rows sent by the broken version carry the unit
    error; the true values (and so the labels) are untouched.
    """
    versions = np.array([known[client].version for client in clients], dtype=object)
    sent = customers
    for incident in incidents:
        client = str(incident.touches["client_id"])
        of_client = clients == client
        begin = (incident.start - day_start).total_seconds()
        versions[of_client & (offsets >= begin)] = str(incident.touches["client_version"])
        end = incident.end
        if end is not None:
            fixed = incident.params.get("fixed_version", known[client].version)
            versions[of_client & (offsets >= (end - day_start).total_seconds())] = str(fixed)
        broken = of_client & active_mask(incident, day_start, offsets)
        if broken.any():
            feature = str(incident.touches["feature"])
            sent = sent.copy() if sent is customers else sent
            values = sent[feature].to_numpy(dtype=float).copy()
            values[broken] = np.round(values[broken] * incident.effect_size, 2)
            sent[feature] = values
    return versions, sent


def check_incident(incident: Incident, *, start: datetime, n_days: int, known: Mapping[str, ClientSpec]) -> None:
    """Reject incidents the simulator cannot play, before any day is generated."""
    where = f"{incident.kind} incident on day {incident.day}"
    if not 0 <= incident.day < n_days:
        raise ValueError(f"{where} is outside the {n_days}-day period")
    if (incident.start - start) // timedelta(days=1) != incident.day:
        raise ValueError(f"{where} starts at {incident.start.isoformat()}, which is not that day of the period")
    touches = incident.touches
    if incident.kind == "covariate_shift" and touches.get("feature") != "watch_hours":
        raise ValueError(f"{where}: only watch_hours can be shifted")
    if incident.kind == "selection_bias" and not isinstance(touches.get("country"), str):
        raise ValueError(f"{where} must touch a country")
    if incident.kind == "software_change":
        if touches.get("client_id") not in known:
            raise ValueError(f"{where} must touch one of the clients {sorted(known)}")
        if touches.get("feature") not in schema.NUMERIC_FEATURES:
            raise ValueError(f"{where} must touch a numeric feature")
        if not isinstance(touches.get("client_version"), str):
            raise ValueError(f"{where} must state the new client_version")
    if incident.kind == "adversarial_probing":
        client = touches.get("client_id")
        if not isinstance(client, str) or client in known:
            raise ValueError(f"{where} must come from a client of its own")
    if incident.kind == "label_poisoning" and not isinstance(touches.get("source"), str):
        raise ValueError(f"{where} must touch a feedback source")
    if incident.kind == "latency_regression" and not isinstance(touches.get("model_version"), int):
        raise ValueError(f"{where} must touch an integer model_version")
