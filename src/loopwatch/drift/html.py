"""A self-contained HTML report with inline SVG plots, built from aggregates only.

It embeds bin counts, category counts and per-window statistics, never the
rows themselves, so its size depends on the number of features and windows,
not on the size of the data.
"""

from __future__ import annotations

import html
from typing import Any, Mapping, Sequence

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem;color:#222;max-width:1200px}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:2rem}
table{border-collapse:collapse;font-size:.85rem}td,th{border:1px solid #ddd;padding:.25rem .5rem;text-align:right}
th{background:#f4f4f4}td.drift{background:#f8c4c4;font-weight:600}td.ok{background:#e8f5e9}
.badge{display:inline-block;padding:.1rem .5rem;border-radius:.6rem;font-size:.8rem}
.alarm{background:#c62828;color:#fff}.quiet{background:#2e7d32;color:#fff}
.plots{display:flex;flex-wrap:wrap;gap:1rem}.plot{border:1px solid #eee;padding:.5rem}
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def bar_chart(title: str, labels: Sequence[str], reference: Sequence[float], current: Sequence[float]) -> str:
    """Reference (grey) and current (blue) shares side by side, one pair per bin or category."""
    ref_total = sum(reference) or 1
    cur_total = sum(current) or 1
    ref = [v / ref_total for v in reference]
    cur = [v / cur_total for v in current]
    width, height, pad = 360, 160, 24
    n = max(1, len(labels))
    top = max([*ref, *cur, 1e-9])
    slot = (width - 2 * pad) / n
    bars = []
    for i in range(len(labels)):
        x = pad + i * slot
        for j, (share, colour) in enumerate(((ref[i], "#9e9e9e"), (cur[i], "#1e88e5"))):
            h = (height - 2 * pad) * share / top
            bars.append(
                f'<rect x="{x + j * slot / 2:.1f}" y="{height - pad - h:.1f}" width="{max(slot / 2 - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{_e(labels[i])}: {share:.3f}</title></rect>'
            )
    return (
        f'<div class="plot"><div>{_e(title)}</div><svg width="{width}" height="{height}" role="img">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>'
        + "".join(bars)
        + f'<text x="{pad}" y="{height - 6}" font-size="10">grey: reference, blue: current</text></svg></div>'
    )


def line_chart(title: str, series: Mapping[str, Sequence[float]], labels: Sequence[str]) -> str:
    width, height, pad = 720, 200, 30
    colours = ["#1e88e5", "#e53935", "#43a047", "#fb8c00", "#8e24aa"]
    values = [v for s in series.values() for v in s if v is not None]
    top = max(values + [1e-9])
    n = max(1, len(labels) - 1)
    paths = []
    for k, (name, points) in enumerate(series.items()):
        coords = [
            f"{pad + i * (width - 2 * pad) / n:.1f},{height - pad - (height - 2 * pad) * v / top:.1f}"
            for i, v in enumerate(points)
        ]
        colour = colours[k % len(colours)]
        paths.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{" ".join(coords)}"/>'
            f'<text x="{width - pad - 150}" y="{14 + 12 * k}" font-size="10" fill="{colour}">{_e(name)}</text>'
        )
    return (
        f'<div class="plot"><div>{_e(title)} (max {top:.3f})</div><svg width="{width}" height="{height}">'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>'
        + "".join(paths)
        + f'<text x="{pad}" y="{height - 8}" font-size="10">{_e(labels[0] if labels else "")}</text>'
        f'<text x="{width - pad - 120}" y="{height - 8}" font-size="10">{_e(labels[-1] if labels else "")}</text>'
        "</svg></div>"
    )


def _distributions(report: dict[str, Any]) -> str:
    plots = []
    for name, feature in report["features"].items():
        dist = feature.get("distribution") or {}
        if "edges" in dist:
            edges = dist["edges"]
            labels = [f"< {edges[0]:.3g}"] + [f"{a:.3g} to {b:.3g}" for a, b in zip(edges, edges[1:])] + [
                f">= {edges[-1]:.3g}" if edges else "all"
            ]
        else:
            labels = dist.get("categories", [])
        if labels:
            flag = " (drift)" if feature["drift"] else ""
            plots.append(bar_chart(f"{name}{flag}", labels, dist["reference"], dist["current"]))
    return '<div class="plots">' + "".join(plots) + "</div>"


def render_drift(report: dict[str, Any], *, title: str = "loopwatch drift report") -> str:
    """One comparison (``DriftReport.to_dict()``) as a page."""
    rows = []
    for name, f in report["features"].items():
        stats = f["statistics"]
        main = stats.get(f["decided_by"])
        shown = main.get("p_value_adjusted") if isinstance(main, dict) else main
        rows.append(
            f"<tr><th>{_e(name)}</th><td>{_e(f['kind'])}</td><td class=\"{'drift' if f['drift'] else 'ok'}\">"
            f"{'drift' if f['drift'] else 'ok'}</td><td>{_e(f['decided_by'])}</td>"
            f"<td>{_fmt(shown)}</td><td>{_fmt(stats.get('wasserstein_normed'))}</td>"
            f"<td>{_fmt(stats.get('psi'))}</td><td>{_fmt(stats.get('js_distance'))}</td></tr>"
        )
    multi = "".join(
        f"<tr><th>{_e(n)}</th><td class=\"{'drift' if m['drift'] else 'ok'}\">{'drift' if m['drift'] else 'ok'}</td>"
        f"<td>{_fmt(m['statistic'])}</td><td>{_fmt(m['p_value'])}</td></tr>"
        for n, m in report["multivariate"].items()
    )
    outl = "".join(
        f"<tr><th>{_e(n)}</th><td class=\"{'drift' if o['drift'] else 'ok'}\">{'drift' if o['drift'] else 'ok'}</td>"
        f"<td>{_fmt(o['rate'])}</td><td>{_fmt(o['expected_rate'])}</td><td>{_fmt(o['p_value'])}</td></tr>"
        for n, o in report["outliers"].items()
    )
    badge = '<span class="badge alarm">drift</span>' if report["dataset_drift"] else '<span class="badge quiet">no drift</span>'
    return _page(
        title,
        f"<h1>{_e(title)} {badge}</h1><p>reference rows: {report['n_reference']}, current rows: "
        f"{report['n_current']}, alpha: {report['alpha']}</p>"
        "<h2>Features</h2><table><tr><th>feature</th><th>kind</th><th>verdict</th><th>decided by</th>"
        "<th>p (adjusted) or value</th><th>Wasserstein (sd)</th><th>PSI</th><th>JS</th></tr>"
        + "".join(rows)
        + "</table>"
        + (f"<h2>Multivariate</h2><table><tr><th>test</th><th>verdict</th><th>statistic</th><th>p</th></tr>{multi}</table>" if multi else "")
        + (f"<h2>Outliers and novelty</h2><table><tr><th>detector</th><th>verdict</th><th>rate</th><th>expected</th><th>p</th></tr>{outl}</table>" if outl else "")
        + "<h2>Distributions</h2>"
        + _distributions(report),
    )


def render_monitor(monitor: dict[str, Any]) -> str:
    """A monitor run (``MonitorReport.to_dict()``): drift per feature across windows,
    outlier rates over time, and the distributions of the last window."""
    windows = [w for w in monitor["windows"] if w.get("segment") is None]
    title = f"loopwatch monitor: {monitor['model']} ({monitor['window']} windows)"
    if not windows:
        return _page(title, f"<h1>{_e(title)}</h1><p>No logged events with input data in this period.</p>")
    features = list(windows[0]["report"]["features"])
    header = "".join(f"<th>{_e(f)}</th>" for f in features)
    body = []
    for w in windows:
        cells = []
        for f in features:
            feat = w["report"]["features"].get(f, {})
            effect = feat.get("statistics", {}).get(
                "wasserstein_normed" if feat.get("kind") == "numeric" else "js_distance"
            )
            cells.append(f"<td class=\"{'drift' if feat.get('drift') else 'ok'}\">{_fmt(effect)}</td>")
        alarms = ", ".join(w["alarms"]) or "-"
        # a quiet window may only be a small one: say which tests it was too small for
        left_out = ", ".join(f"{t['test']} ({t['reason']})" for t in w.get("skipped", [])) or "-"
        body.append(
            f"<tr><th>{_e(w['start'][:16])}</th><td>v{w['model_version']}</td><td>{w['n_events']}</td>"
            + "".join(cells) + f"<td style=\"text-align:left\">{_e(alarms)}</td>"
            f"<td style=\"text-align:left\">{_e(left_out)}</td></tr>"
        )
    labels = [w["start"][:10] for w in windows]
    detectors = list(windows[0]["report"]["outliers"])
    series = {d: [w["report"]["outliers"].get(d, {}).get("rate", 0.0) for w in windows] for d in detectors}
    n_alarms = sum(1 for w in windows if w["alarm"])
    badge = f'<span class="badge {"alarm" if n_alarms else "quiet"}">{n_alarms} windows with alarms</span>'
    last = windows[-1]
    return _page(
        title,
        f"<h1>{_e(title)} {badge}</h1>"
        "<h2>Drift per feature across windows</h2><p>Cells show the effect (Wasserstein in reference "
        "standard deviations, or Jensen-Shannon distance); red cells drifted.</p>"
        f"<table><tr><th>window</th><th>version</th><th>events</th>{header}<th>alarms</th><th>tests left out</th></tr>"
        + "".join(body) + "</table>"
        + ("<h2>Outlier and novelty rates over time</h2>" + line_chart("share of rows flagged", series, labels) if series else "")
        + f"<h2>Distributions in the last window ({_e(last['start'][:16])})</h2>"
        + _distributions(last["report"]),
    )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return _e(value)


def _page(title: str, body: str) -> str:
    return (
        f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{_e(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>"
    )
