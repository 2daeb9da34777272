"""report.html: one self-contained page per results directory.

Everything is inside the file: CSS inline, PNG plots as base64 `data:` URIs, links
only to `#anchors`, no scripts. It opens from the results folder with no server,
survives being mailed or attached to a ticket, and never calls out to the network.
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any, Sequence

from loadgen.report.compare import compare, headline, table_rows
from loadgen.report.summary_table import HEADERS, failure_notes, row_values
from loadgen.report.table import Table
from loadgen.report.view import RunView
from loadgen.scenario.thresholds import format_value

REPORT_HTML = "report.html"

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:24px auto;
max-width:1200px;padding:0 16px;color:#1b1f24;line-height:1.4}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #d0d7de;
padding-bottom:.2em}h3{font-size:1.05em;margin:1.2em 0 .4em}
.facts{color:#57606a}nav a{margin-right:1em}
table{border-collapse:collapse;margin:.4em 0 .2em;font-size:.9em}
th,td{border:1px solid #d0d7de;padding:3px 8px;text-align:right;white-space:nowrap}
th{background:#f6f8fa}td.l,th.l{text-align:left}
tr:nth-child(even) td{background:#fbfcfd}
.note{color:#57606a;font-size:.85em;margin:.2em 0 1em;max-width:1000px}
.pass{color:#1a7f37;font-weight:600}.fail{color:#cf222e;font-weight:600}.skip{color:#57606a}
.headline{font-size:1.1em;background:#f6f8fa;border-left:4px solid #0969da;padding:6px 12px;margin:.3em 0}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #d0d7de}
figcaption{color:#57606a;font-size:.9em}
"""

CAPTIONS = {
    "latency.png": "Latency by percentile per arm, on HdrHistogram's log percentile axis (x = 1/(1-p)): "
                   "90 %, 99 %, 99.9 % are evenly spaced. Every attempt is drawn, failed ones at the time "
                   "they failed (the legend counts them); a dotted line is the same arm's ok attempts alone. "
                   "Batch arms are not drawn (their results come back in hours): see the batch table.",
    "cache-by-gap.png": "Cache warm ratio against the gap since the previous call on the same prefix; "
                        "dashed lines at the 5-minute and 1-hour TTLs; ticks above 100 % / below 0 % are "
                        "warm / cold calls, one per distinct gap at the plot's resolution.",
    "cost.png": "Cumulative cost over scenario time per arm, one step per time bin (at most 2,048 per arm).",
    "throughput.png": "Requests, throttles and quota tokens per minute of scenario time, with the quota "
                      "when it is known.",
}


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def table_html(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], note: str = "",
               cell_class: Any = None, left: int = 1) -> str:
    """A table; the first `left` columns are labels (left-aligned), `cell_class(i, text)` may
    give a cell a CSS class (pass/fail)."""
    head = "".join(f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>"
                   for i, h in enumerate(headers))
    body = []
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            cls = " ".join(filter(None, [cell_class(i, c) if cell_class else None, "l" if i < left else None]))
            cells.append(f'<td class="{cls}">{_e(c)}</td>' if cls else f"<td>{_e(c)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    out = (f"<h3>{_e(title)}</h3>" if title else "") + f"<table><thead><tr>{head}</tr></thead><tbody>" \
        + "".join(body) + "</tbody></table>"
    return out + (f'<p class="note">{_e(note)}</p>' if note else "")


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def render(view: RunView, results: Sequence[Any], tables: Sequence[Table], plots: Sequence[Path]) -> str:
    """The page as a string. `results`: thresholds.Result list; `tables`: the per-arm
    detail (`loadgen.report.detail`); `plots`: PNG files to embed."""
    s = view.summary
    arms = s.get("arms", {})
    title = f"loadgen report: {s.get('scenario', '?')}"
    facts = (f"{s.get('target', '?')} target, clock {s.get('clock', '?')}"
             + (f" x{s.get('time_scale') or 1:g}" if s.get("clock") in ("warp", "scaled") else "")
             + (" (as scenario.toml sets it; no run.json)" if s.get("clock_source") == "scenario.toml" else "")
             + f", seed {s.get('seed', '?')}, {float(s.get('scenario_s') or 0):.0f} s scenario time in "
             + f"{float(s.get('wall_s') or 0):.1f} s wall, loadgen {s.get('loadgen_version', '?')}"
             + (f", stopped: {s['stopped']}" if s.get("stopped") not in (None, "completed") else ""))
    sections: list[tuple[str, str, str]] = []  # (anchor, heading, html)

    comp = compare(list(arms.items())) if len(arms) > 1 else None
    top = []
    if comp is not None:
        top += [f'<p class="headline">{_e(line)}</p>' for line in headline(comp)]
    if results:
        failed = sum(r.failed for r in results)
        top.append(f'<p class="headline">thresholds: <span class="{"fail" if failed else "pass"}">'
                   f'{failed} of {len(results)} failed</span></p>' if failed else
                   f'<p class="headline">thresholds: <span class="pass">all {len(results)} passed</span></p>')
    top.append(table_html("", HEADERS, [row_values(n, a) for n, a in arms.items()]))
    top += [f'<p class="note fail">{_e(line)}</p>' for line in failure_notes(s)]  # failures beside latency
    sections.append(("summary", "Summary", "".join(top)))

    if results:
        rows = [(r.arm, r.expr.text, r.status, format_value(r.expr, r.measured) if r.measured is not None
                 else r.note, f"line {r.line}" if r.line else "") for r in results]
        sections.append(("thresholds", "Thresholds", table_html(
            "", ("arm", "threshold", "result", "measured", "scenario.toml"), rows, left=2,
            cell_class=lambda i, c: {"PASS": "pass", "FAIL": "fail", "SKIP": "skip"}.get(c) if i == 2 else None)))

    if comp is not None:
        headers, rows = table_rows(comp)
        sections.append(("compare", f"Arms compared with {comp.baseline}", table_html(
            "", headers, rows, "Deltas against the first arm: absolute and %, percentage points for ratios.")))

    if plots:
        figs = []
        for p in plots:
            p = Path(p)
            figs.append(f'<figure id="plot-{_e(p.stem)}"><img alt="{_e(p.stem)}" src="{png_data_uri(p)}">'
                        f"<figcaption>{_e(CAPTIONS.get(p.name, p.name))}</figcaption></figure>")
        sections.append(("plots", "Plots", "".join(figs)))

    sections.append(("detail", "Per-arm detail", "".join(
        table_html(t.title, t.headers, t.rows, t.note, left=t.left) for t in tables)))
    if view.notes:
        sections.append(("notes", "Notes", "".join(f'<p class="note">{_e(n)}</p>' for n in view.notes)))

    nav = "".join(f'<a href="#{a}">{_e(h)}</a>' for a, h, _ in sections)
    body = "".join(f'<section id="{a}"><h2>{_e(h)}</h2>{content}</section>' for a, h, content in sections)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{_e(title)}</h1><p class=\"facts\">{_e(facts)}</p>"
            f"<p class=\"facts\">{_e(str(view.path))}</p><nav>{nav}</nav>{body}</body></html>\n")


def write(view: RunView, results: Sequence[Any], tables: Sequence[Table], plots: Sequence[Path]) -> Path:
    """Write DIR/report.html atomically (temp file + rename); returns its path."""
    out = Path(view.path) / REPORT_HTML
    tmp = out.with_name(f".{REPORT_HTML}.tmp-{os.getpid()}")
    tmp.write_text(render(view, results, tables, plots), encoding="utf-8")
    os.replace(tmp, out)
    return out
