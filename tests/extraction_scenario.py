"""Model extraction by ordinary querying, on a real table, against a served model.

Shared by ``tests/monitoring/test_extraction_realdata.py`` (a small run in CI) and
``benchmarks/extraction.py`` (the graded table in ``docs/security.md``).

A model is trained with loopwatch on part of a real table and served in process
(``Workspace.predictor``, every request logged to a real SQLite file with its
client id). For several days ordinary clients send real rows the model never saw:

* ``web``: high-volume traffic drawn from the whole population;
* ``clinic``: a client whose customers differ from the pooled population (only the
  rows of one segment of the table: real rows, covariate-shifted).

On the last day one attacker client copies the model with one strategy:

* ``uniform``: queries drawn uniformly over the feature box (each numeric feature
  between the table's minimum and maximum, each category equally likely);
* ``active``: active learning, a surrogate refitted after every batch and the next
  batch chosen where the surrogate is least sure (candidates drawn over the box);
* ``lattice``: a few real rows, each swept one feature at a time over a grid of
  the feature's range (the one-feature-at-a-time probe).

The attacker only reads the labels it is answered, as an attacker must when
probabilities are withheld. Its surrogate (a logistic regression on its queries
and answers) is scored on held-out real rows: the share of rows on which it
agrees with the served model. Then the loop engine evaluates the whole range and
the incidents that name a client are read back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

STRATEGIES = ("uniform", "active", "lattice")
START = datetime(2026, 3, 2, tzinfo=timezone.utc)
#: Kinds of incident that name a client.
CLIENT_KINDS = ("adversarial_probing", "adversarial_evasion")


@dataclass(frozen=True, kw_only=True)
class Table:
    name: str
    frame: pd.DataFrame
    target: str
    categorical: tuple[str, ...] = ()
    #: The rows of the covariate-shifted client: a mask over ``frame``.
    segment: Callable[[pd.DataFrame], pd.Series] = field(default=lambda f: pd.Series(True, index=f.index))
    segment_description: str = ""

    @property
    def features(self) -> list[str]:
        return [c for c in self.frame.columns if c != self.target]


def breast_cancer() -> Table:
    """scikit-learn's bundled Wisconsin breast cancer table (569 tumours, 30 measurements).
    The clinic's patients are those with the larger tumours (``mean_radius`` above the
    median): a referral centre, not the screening population."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.data.copy()
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["malignant"] = (data.target == 0).astype("int64")
    return Table(
        name="breast_cancer", frame=frame, target="malignant",
        segment=lambda f: f["mean_radius"] > f["mean_radius"].median(),
        segment_description="mean_radius above the median",
    )


def flights(rows: int = 24_000) -> Table:
    """New York's 2013 departures (``tests/realdata.py``), ``rows`` of them drawn once at random;
    target ``late``. The covariate-shifted client is one airport's own app: departures from
    LaGuardia only (``origin`` 3), whose carriers, destinations and distances differ from the
    three airports pooled."""
    from tests.realdata import FLIGHTS_CATEGORICAL
    from tests.realdata import flights as load

    frame = load().drop(columns=["time"]).sample(rows, random_state=0).reset_index(drop=True)
    return Table(
        name="flights", frame=frame, target="late", categorical=tuple(FLIGHTS_CATEGORICAL),
        segment=lambda f: f["origin"] == 3, segment_description="origin LGA (code 3) only",
    )


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Sizes of one run."""

    days: int = 4
    web_per_day: int = 1500
    clinic_per_day: int = 300
    attack_rows: int = 2000
    #: Rows per request: ordinary clients send larger batches; the attacker's is its
    #: active-learning batch (it must see the answers before choosing the next queries).
    batch: int = 250
    attack_batch: int = 50
    #: Share of the table the model is trained on (loopwatch keeps its own holdout in it),
    #: and share kept back to score the attacker's surrogate; the rest is the traffic.
    train_share: float = 0.5
    eval_share: float = 0.15


@dataclass(frozen=True, kw_only=True)
class RunResult:
    table: str
    strategy: str
    seed: int
    attacker_named: bool
    attacker_kinds: list[str]
    benign_named: list[dict[str, Any]]
    surrogate_agreement: float
    #: The share of held-out rows given the served model's most common answer: what a copy that
    #: always gives that answer would agree on.
    constant_agreement: float
    attacker_rows: int
    incidents: list[dict[str, Any]]
    scores: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


# --- the attacker's queries --------------------------------------------------------------


class Box:
    """What an attacker knows of the inputs: each numeric feature's range and decimals, each
    categorical feature's values."""

    def __init__(self, frame: pd.DataFrame, features: list[str], categorical: tuple[str, ...]) -> None:
        self.features = features
        self.numeric = [f for f in features if f not in categorical]
        self.categorical = [f for f in features if f in categorical]
        self.low = frame[self.numeric].min()
        self.high = frame[self.numeric].max()
        self.decimals = {f: _decimals(frame[f]) for f in self.numeric}
        self.values = {f: np.sort(frame[f].dropna().unique()) for f in self.categorical}

    def uniform(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        out = {}
        for f in self.features:
            if f in self.values:
                out[f] = rng.choice(self.values[f], size=n)
            else:
                out[f] = np.round(rng.uniform(self.low[f], self.high[f], size=n), self.decimals[f])
        return pd.DataFrame(out)[self.features]

    def scaled(self, frame: pd.DataFrame) -> np.ndarray:
        """The attacker's own encoding: numbers scaled to [0, 1] over the box, categories one-hot."""
        scaled = ((frame[self.numeric] - self.low) / (self.high - self.low).replace(0, 1)).to_numpy(dtype=float)
        parts = [np.nan_to_num(scaled, nan=0.5)]  # a missing number (a cancelled flight's air time): mid-range
        for f in self.categorical:
            parts.append((frame[f].to_numpy()[:, None] == self.values[f][None, :]).astype(float))
        return np.column_stack(parts)


def _decimals(column: pd.Series) -> int:
    values = column.dropna().to_numpy(dtype=float)[:500]
    for d in range(7):
        if np.allclose(values, np.round(values, d), atol=1e-9, rtol=0):
            return d
    return 6


def _surrogate(box: Box, queries: pd.DataFrame, labels: np.ndarray) -> Any:
    from sklearn.linear_model import LogisticRegression

    if len(set(labels.tolist())) < 2:
        return None
    return LogisticRegression(max_iter=2000, C=10.0).fit(box.scaled(queries), labels)


def lattice_queries(box: Box, anchors: pd.DataFrame, n: int, *, steps: int = 7) -> pd.DataFrame:
    """Each anchor swept one feature at a time over ``steps`` values across the feature's range."""
    rows = []
    for _, anchor in anchors.iterrows():
        for f in box.features:
            grid = box.values[f] if f in box.values else np.round(
                np.linspace(box.low[f], box.high[f], steps), box.decimals[f])
            for value in grid:
                row = anchor.copy()
                row[f] = value
                rows.append(row)
    return pd.DataFrame(rows)[box.features].reset_index(drop=True).iloc[:n]


# --- one run -----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """A served model and its ordinary traffic, logged in a SQLite file each attack starts from."""

    table: Table
    seed: int
    plan: Plan
    database: Path
    box: Box
    traffic: pd.DataFrame
    held_out: pd.DataFrame


def prepare(table: Table, seed: int, home: Path, *, plan: Plan = Plan()) -> Prepared:
    """Train the served model and log ``plan.days`` days of the ordinary clients' traffic."""
    from loopwatch.config import Settings
    from loopwatch.application.workspace import Workspace

    rng = np.random.default_rng(seed)
    order = rng.permutation(len(table.frame))
    n_train = int(plan.train_share * len(order))
    n_eval = int(plan.eval_share * len(order))
    train = table.frame.iloc[order[:n_train]].reset_index(drop=True)
    held_out = table.frame.iloc[order[n_train:n_train + n_eval]].reset_index(drop=True)
    traffic = table.frame.iloc[order[n_train + n_eval:]].reset_index(drop=True)
    segment = traffic[table.segment(traffic).to_numpy(dtype=bool)].reset_index(drop=True)
    database = home / f"{table.name}-{seed}.db"
    with Workspace(Settings.from_env({}, home=home, database=str(database))) as ws:
        ws.train("served", train, target=table.target, categorical=list(table.categorical), seed=seed)
        sender = _Sender(ws, plan)
        for day in range(plan.days):
            midnight = START + timedelta(days=day)
            web = traffic.sample(plan.web_per_day, replace=True, random_state=int(rng.integers(2**31)))
            clinic = segment.sample(plan.clinic_per_day, replace=True, random_state=int(rng.integers(2**31)))
            sender.send("web", web[table.features], midnight + timedelta(hours=1), timedelta(seconds=20))
            sender.send("clinic", clinic[table.features], midnight + timedelta(hours=2), timedelta(seconds=60))
        sender.wait()
    return Prepared(table=table, seed=seed, plan=plan, database=database, traffic=traffic, held_out=held_out,
                    box=Box(table.frame, table.features, table.categorical))


def attack(prepared: Prepared, strategy: str, home: Path) -> RunResult:
    """A copy of the prepared log, the attacker's queries on its last day (answered by the served
    model as they come), then the loops evaluated over every day: who was named."""
    import sqlite3

    from loopwatch.config import Settings
    from loopwatch.models.training import prepare_features
    from loopwatch.application.monitoring.extraction_watch import watch_clients
    from loopwatch.application.monitoring.loops_runner import evaluate_loops
    from loopwatch.application.workspace import Workspace

    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}")
    table, plan, box = prepared.table, prepared.plan, prepared.box
    database = home / f"{table.name}-{prepared.seed}-{strategy}.db"
    with sqlite3.connect(prepared.database) as source, sqlite3.connect(database) as target:
        source.backup(target)
    rng = np.random.default_rng([prepared.seed, STRATEGIES.index(strategy)])
    with Workspace(Settings.from_env({}, home=home, database=str(database))) as ws:
        sender = _Sender(ws, plan, prefix=strategy)
        attack_at = START + timedelta(days=plan.days - 1, hours=14)
        queries, answers = _attack(strategy, box, prepared.traffic, plan, rng,
                                   lambda rows, at: sender.send("attacker", rows, at, timedelta(seconds=2)),
                                   attack_at)
        sender.wait()
        surrogate = _surrogate(box, queries, answers)
        loaded = ws.registry.load("served")
        truth_rows = prepared.held_out[table.features]
        served_labels = np.asarray(loaded.pipeline.predict(prepare_features(truth_rows, loaded.version.schema)))
        copied = (np.full(len(truth_rows), answers[0]) if surrogate is None
                  else surrogate.predict(box.scaled(truth_rows)))
        agreement = float(np.mean(copied.astype(str) == served_labels.astype(str)))
        constant = float(pd.Series(served_labels.astype(str)).value_counts(normalize=True).iloc[0])
        until = START + timedelta(days=plan.days)
        report = evaluate_loops(ws.store, ws.registry, "served", until=until)
        scored = watch_clients(ws.store, ws.registry, "served", since=None, until=until, all_clients=True)
    incidents = [i.to_dict() for i in report.incidents]
    named = [(i["evidence"].get("client_id"), i) for i in incidents if i["kind"] in CLIENT_KINDS]
    return RunResult(
        table=table.name, strategy=strategy, seed=prepared.seed,
        attacker_named=any(client == "attacker" for client, _ in named),
        attacker_kinds=sorted({i["kind"] for client, i in named if client == "attacker"}),
        benign_named=[{"client": client, "kind": i["kind"], "first_seen": i["first_seen"], "summary": i["summary"]}
                      for client, i in named if client != "attacker"],
        surrogate_agreement=agreement,
        constant_agreement=constant,
        attacker_rows=len(queries),
        incidents=[{"kind": i["kind"], "first_seen": i["first_seen"], "summary": i["summary"]} for i in incidents],
        scores=[{"client": a.client_id, "day": (a.window_start - START).days, "n_rows": a.n_rows,
                 "score": round(a.score, 3), "flagged": a.flagged, "reasons": list(a.reasons),
                 "signals": {k: round(v, 3) for k, v in a.signals.items()},
                 # (getattr: the same scenario measures the code before the per-signal thresholds)
                 "against": {k: {b: round(v, 3) for b, v in against.items()}
                             for k, against in getattr(a, "against", {}).items()}}
                for a in scored],
    )


def run(table: Table, strategy: str, seed: int, home: Path, *, plan: Plan = Plan()) -> RunResult:
    """:func:`prepare` and :func:`attack` in one."""
    return attack(prepare(table, seed, home, plan=plan), strategy, home)


class _Sender:
    """Sends rows as a client through the workspace's predictor, in batches, and logs them."""

    def __init__(self, ws: Any, plan: Plan, *, prefix: str = "r") -> None:
        self.ws, self.plan, self.prefix = ws, plan, prefix
        self.futures: list[Any] = []
        self.count = 0

    def send(self, client: str, rows: pd.DataFrame, at: datetime, spacing: timedelta) -> np.ndarray:
        """Predict ``rows`` as ``client`` from ``at``, one row per ``spacing``; the labels answered."""
        from loopwatch.application.prediction import PredictCall

        labels = []
        batch = self.plan.attack_batch if client == "attacker" else self.plan.batch
        for lo in range(0, len(rows), batch):
            part = rows.iloc[lo:lo + batch]
            records = part.astype(object).where(part.notna(), None).to_dict(orient="records")
            self.count += 1
            logged = self.ws.predictor.predict(PredictCall(
                model_name="served", rows=records, request_id=f"{self.prefix}{self.count}", client_id=client,
                client_version="1.0", timestamps=[at + spacing * (lo + i) for i in range(len(records))]))
            self.futures.append(self.ws.writer.submit(logged))
            labels.extend(p[0] for p in logged.predictions)
        return np.asarray(labels)

    def wait(self) -> None:
        for future in self.futures:
            future.result()
        self.futures.clear()


def _attack(
    strategy: str, box: Box, traffic: pd.DataFrame, plan: Plan, rng: np.random.Generator,
    send: Callable[[pd.DataFrame, datetime], np.ndarray], at: datetime,
) -> tuple[pd.DataFrame, np.ndarray]:
    n = plan.attack_rows
    if strategy == "uniform":
        queries = box.uniform(n, rng)
        return queries, send(queries, at)
    if strategy == "lattice":
        anchors = traffic.sample(max(1, -(-n // (len(box.features) * 7))), random_state=int(rng.integers(2**31)))
        queries = lattice_queries(box, anchors[box.features], n)
        return queries, send(queries, at)
    # active learning: a start of uniform queries and a few real rows the attacker holds (so
    # that both answers are seen), then batches where the surrogate is least sure
    start = pd.concat([box.uniform(n // 10, rng),
                       traffic.sample(20, random_state=int(rng.integers(2**31)))[box.features]],
                      ignore_index=True)
    queries, answers = start, send(start, at)
    while len(queries) < n:
        model = _surrogate(box, queries, answers)
        candidates = box.uniform(20 * plan.attack_batch, rng)
        if model is None:
            picked = candidates.iloc[: plan.attack_batch]
        else:
            p = model.predict_proba(box.scaled(candidates))
            margin = np.abs(p.max(axis=1) - 0.5)
            picked = candidates.iloc[np.argsort(margin, kind="stable")[: min(plan.attack_batch, n - len(queries))]]
        picked = picked.reset_index(drop=True)
        later = at + timedelta(seconds=2 * len(queries))
        queries = pd.concat([queries, picked], ignore_index=True)
        answers = np.concatenate([answers, send(picked, later)])
    return queries, answers
