"""A day of a million events summarised window by window: what the non-feature parts cost, how
large they are stored, and whether a 2,000-query extraction client is still named.

The day: 24 hourly windows of real New York 2013 departures (distance, air time, scheduled
hour) sent by 600 ordinary clients of Zipf-skewed sizes and three batch jobs, about 41,600
events an hour, plus one attacker that sends 2,000 queries drawn uniformly over the feature
box, spread over the day (83 an hour). Each hour is summarised into a window-wide row sample
(k = 2,000), traffic sums and client evidence (pruned to the 100 largest clients, 128 rows
each), as the summariser would store it; the day is the merge of the 24 hours. The
extraction detector, fitted on 3,000 reference rows, then judges the attacker and the
largest ordinary client from their samples alone, and the window-wide sample is searched
for the attacker's rows.

Writes ``benchmarks/results/summaries_window.json`` (or ``--out``). About a minute on two
shared cores (``--events`` scales the day).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from benchmarks._common import machine_facts, now_iso, write_json  # noqa: E402
from loopwatch.detectors.extraction import ExtractionDetector  # noqa: E402
from loopwatch.summaries.reservoir import RowSample  # noqa: E402
from loopwatch.summaries.traffic import ClientSums, TrafficSums  # noqa: E402
from tests.realdata import flights  # noqa: E402

FEATURES = ["distance", "air_time", "sched_hour"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="ordinary events in the day")
    parser.add_argument("--attacker", type=int, default=2000, help="the extraction client's queries")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "summaries_window.json")
    args = parser.parse_args()
    table = flights().dropna(subset=["air_time"])[FEATURES].reset_index(drop=True)
    rng = np.random.default_rng(14)
    reference = table.sample(3000, random_state=1)
    detector = ExtractionDetector(seed=0).fit(reference, numeric=FEATURES)
    ordinary = table.drop(reference.index).reset_index(drop=True)
    low, high = table.min(), table.max()
    attack = pd.DataFrame({f: rng.uniform(low[f], high[f], args.attacker).round(0) for f in FEATURES})
    hours, per_hour = 24, args.events // 24
    jobs = per_hour // 20
    seconds = {"row_sample": 0.0, "traffic": 0.0, "clients": 0.0}
    sizes = {"row_sample": 0, "traffic": 0, "clients": 0}
    latency = rng.lognormal(2.5, 0.6, hours * per_hour + args.attacker)
    day_sample, day_traffic, day_clients = RowSample.empty(k=2000, seed=9), TrafficSums(), ClientSums(seed=9)
    taken, out_sent = 0, []
    for hour in range(hours):
        clients = np.r_[
            np.array([f"user{i}" for i in rng.zipf(1.3, per_hour - 3 * jobs) % 600], dtype=object),
            np.repeat(["crm", "billing", "reports"], jobs).astype(object),
        ]
        rows = ordinary.iloc[(np.arange(per_hour) + hour * per_hour) % len(ordinary)]
        mine = attack.iloc[taken: (args.attacker * (hour + 1)) // hours]
        taken += len(mine)
        frame = pd.concat([rows, mine], ignore_index=True)
        n = len(frame)
        ids = [f"h{hour}-{i}" for i in range(n)]
        client_ids = list(clients) + ["attacker"] * len(mine)
        started = time.perf_counter()
        sample = RowSample.from_rows(ids, [0] * n, frame, k=2000, seed=9)
        seconds["row_sample"] += time.perf_counter() - started
        started = time.perf_counter()
        traffic = TrafficSums.from_columns(row_indices=[0] * n, request_latency_ms=latency[:n],
                                           request_types=["api"] * n, fingerprint_ids=["f1"] * n)
        seconds["traffic"] += time.perf_counter() - started
        started = time.perf_counter()
        evidence = ClientSums.from_columns(client_ids=client_ids, request_ids=ids, row_indices=[0] * n,
                                           timestamps_us=[hour * 3_600_000_000 + i for i in range(n)],
                                           request_types=["api"] * n, rows=frame, seed=9, max_clients=100,
                                           rows_per_client=128)
        out_sent.append(sum(1 for c, a in evidence.activity.items() if c != "attacker"
                            and a.n > evidence.activity["attacker"].n))
        seconds["clients"] += time.perf_counter() - started
        for name, part in (("row_sample", sample), ("traffic", traffic), ("clients", evidence)):
            sizes[name] = max(sizes[name], len(json.dumps(part.to_dict())))
        day_sample, day_traffic, day_clients = (
            day_sample.merge(sample), day_traffic.merge(traffic), day_clients.merge(evidence))
    total = hours * per_hour + args.attacker
    queries, _, covered = day_clients.queries("attacker")
    attacker = detector.decide(detector.features(queries[FEATURES]), client_id="attacker")
    largest = max((c for c in day_clients.activity if c != "attacker"), key=lambda c: day_clients.activity[c].n)
    theirs, _, _ = day_clients.queries(largest)
    ordinary_flag = detector.decide(detector.features(theirs[FEATURES]), client_id=largest).flagged
    in_window_sample = sum(1 for r in day_sample.rows if int(r.request_id.split("-")[1]) >= per_hour)
    result = {
        "when": now_iso(), "machine": machine_facts(),
        "events": total, "hours": hours, "clients": len(day_clients.activity),
        "build_events_per_second": {k: round(total / v) for k, v in seconds.items()},
        "largest_stored_hour_json_bytes": sizes,
        "attacker": {"queries": day_clients.activity["attacker"].n, "sampled_rows": len(queries),
                     "covered_share": covered, "named": attacker.flagged, "score": attacker.score,
                     "rows_in_window_wide_sample": in_window_sample,
                     "clients_out_sending_it_per_hour": {"min": min(out_sent), "max": max(out_sent)}, "detector_min_rows": detector.min_rows},
        "largest_ordinary_client": {"client": largest, "queries": day_clients.activity[largest].n,
                                    "flagged": ordinary_flag},
        "latency_p50_ms": day_traffic.latency_ms(0.5).__dict__, "latency_p99_ms": day_traffic.latency_ms(0.99).__dict__,
    }
    write_json(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=2))


if __name__ == "__main__":
    main()
