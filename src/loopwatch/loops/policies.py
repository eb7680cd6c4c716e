"""The loop engine's special rules, each a named, pure function with its own tests.

The diagnosis names what each window shows; these rules decide how findings of different
kinds meet, where one finding explains another or where a client's own traffic must not be
read as everyone's:

- :func:`probing_clients` and :func:`mapping_clients`: which clients' rows the population's
  evidence is judged without;
- :func:`not_software_suspects`: a probing client is never a software-change suspect;
- :func:`one_latency_finding_per_window`: one window, one latency finding, however many
  versions served in it;
- :func:`evasion_explained_by_software`: a known client's evasion that its own new software
  explains joins that software change.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Sequence

import numpy as np
import pandas as pd

from loopwatch.loops.report import Finding

#: (window start, client id): a client in one window.
ClientWindow = tuple[datetime, Any]


def probing_clients(probes: Sequence[Finding]) -> set[ClientWindow]:
    """Every client and window named for probing."""
    return {(p.window_start, p.evidence.get("client_id")) for p in probes}


def mapping_clients(probes: Sequence[Finding]) -> set[ClientWindow]:
    """The probing clients whose rows the population's drift is judged without: their queries
    are the probing incident's evidence, and would otherwise also be raised as a change in
    everyone's inputs. A client named on the boundary signal alone stays in: it may be an
    evader, and its flagged rows belong in the window's evasion share."""
    return {(p.window_start, p.evidence.get("client_id")) for p in probes
            if p.evidence.get("reasons") != ["boundary"]}


def not_software_suspects(rows: pd.DataFrame, start: datetime, probing: set[ClientWindow]) -> pd.DataFrame:
    """The window's rows that may make a software suspect: a probing client is new software of
    its own (a client version never seen before), and its rows are the probing incident's."""
    if not probing:
        return rows
    probed = np.fromiter(((start, client) in probing for client in rows["__client_id"]), dtype=bool,
                         count=len(rows))
    return rows[~probed] if probed.any() else rows


def one_latency_finding_per_window(findings: Sequence[Finding]) -> list[Finding]:
    """The first latency finding of each window, not one per version serving in it."""
    seen: set[datetime] = set()
    kept = []
    for finding in findings:
        if finding.kind == "latency_regression":
            if finding.window_start in seen:
                continue
            seen.add(finding.window_start)
        kept.append(finding)
    return kept


def evasion_explained_by_software(findings: Sequence[Finding], evasions: Sequence[Finding]
                                  ) -> tuple[list[Finding], list[Finding]]:
    """The findings, and the evasion findings left standing.

    An evasion suspect whose own software changed in that window (a client known from its
    history, now at a new version whose inputs differ) is that software change: its evasion
    test joins the ``software_change`` finding's evidence rather than raising a second incident.
    A pipeline that starts sending minutes for hours puts every row far from the training data,
    which the evasion score flags; the software change says why. A client without history (a
    new key, an attacker's first window) is never explained this way."""
    changed = {(f.window_start, (f.evidence.get("software_change") or {}).get("client")): i
               for i, f in enumerate(findings)
               if f.kind == "software_change"
               and (f.evidence.get("software_change") or {}).get("what") == "client_version"}
    out, kept = list(findings), []
    for evasion in evasions:
        at = changed.get((evasion.window_start, evasion.evidence.get("client_id")))
        if at is None or evasion.evidence.get("history_rate") is None:
            kept.append(evasion)
            continue
        out[at] = replace(out[at], evidence={**out[at].evidence, "evasion": evasion.evidence})
    return out, kept
