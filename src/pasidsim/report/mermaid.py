"""Sequence diagrams of scenario runs: Mermaid text, a self-drawn SVG, a standalone HTML page.

Each event is a call arrow from its actor to the kernel (``hw`` for hardware events) and a
dashed return arrow with the return value; a step whose expectation failed is drawn in red.
The HTML page embeds the SVG and the Mermaid source (in a ``<pre>``) and references nothing
outside itself, so it can be opened offline.
"""

from __future__ import annotations

import html
from pathlib import Path

from .output import write_text_atomic

_COL = 170      # px between lifelines
_ROW = 22       # px per arrow
_TOP = 70       # px above the first arrow
_LABEL = 78     # max characters of an arrow label in the SVG


def _participants(result, rows) -> list[str]:
    """Actors that took a step, in actor-index order (setup, declared actors, children, hw)."""
    present = {r.actor for r in rows}
    order = [a.name for a in result.compiled.actors] + ["hw"]
    return [n for n in order if n in present]


def _mm(text: str) -> str:
    """Make text safe for a Mermaid message (no ``;``, ``#`` or newlines)."""
    return text.replace(";", ",").replace("#", "no.").replace("\n", " ").strip()


def marked_rows(result) -> list:
    """The run's :func:`~pasidsim.scenario.trace.event_rows`, where the step after which an
    invariant broke also carries ``VIOLATES <invariant>: <message>`` (objects named, see
    :func:`~pasidsim.report.itf.named`) among its failures: diagrams draw it in red."""
    from ..scenario.trace import event_rows
    from .itf import named, run_names
    rows = event_rows(result)
    if not result.violations:
        return rows
    names = run_names(result)
    extra: dict[int, list[str]] = {}
    for v in result.violations:
        extra.setdefault(v.event, []).append(f"VIOLATES {v.name}: {named(v.message, names)}")
    return [r._replace(failures=tuple(r.failures) + tuple(extra.get(i, ())))
            for i, r in enumerate(rows)]


def mermaid_text(result) -> str:
    """The run as a Mermaid ``sequenceDiagram``; a failed expectation or a broken invariant
    is a note on its step (``FAILED …``, ``VIOLATES …``)."""
    rows = marked_rows(result)
    c = result.compiled
    names = _participants(result, rows)
    ids = {n: f"p{i}" for i, n in enumerate(names)}
    out = ["sequenceDiagram", f"    title {_mm(c.model.name)} (design {_mm(c.policy.name)})"]
    out += [f"    participant {ids[n]} as {_mm(n)}" for n in names]
    out.append("    participant K as kernel")
    for r in rows:
        a = ids[r.actor]
        out.append(f"    {a}->>K: {_mm(r.call)}")
        ret = r.ret + (f" (expected {r.expect})" if r.expect else "")
        out.append(f"    K-->>{a}: {_mm(ret)}")
        if r.failures:
            out.append(f"    Note over {a},K: {_mm(_failed_text(r.failures))}")
        elif r.note and r.actor != "setup":
            out.append(f"    Note over {a},K: {_mm(r.note)}")
    return "\n".join(out) + "\n"


def _failed_text(failures) -> str:
    return "; ".join(f if f.startswith("VIOLATES ") else f"FAILED {f}" for f in failures)


def svg_text(result) -> str:
    """The run as a standalone SVG sequence diagram (drawn here, no Mermaid needed): a step
    whose expectation failed or after which an invariant broke is red, with the text."""
    rows = marked_rows(result)
    cols = _participants(result, rows) + ["kernel"]
    x = {n: 90 + i * _COL for i, n in enumerate(cols)}
    kx = x["kernel"]
    lines_needed = sum(3 if (r.failures or (r.note and r.actor != "setup")) else 2 for r in rows)
    height = _TOP + lines_needed * _ROW + 40
    width = kx + 90 + 8 * _LABEL // 2
    e = html.escape
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="monospace" font-size="12">',
           '<defs><marker id="arrow" markerWidth="8" markerHeight="8" refX="7" refY="4" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#333"/></marker>'
           '<marker id="arrowred" markerWidth="8" markerHeight="8" refX="7" refY="4" '
           'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="#c00"/></marker></defs>',
           f'<rect width="{width}" height="{height}" fill="#fff"/>']
    for n in cols:
        out.append(f'<rect x="{x[n] - 60}" y="10" width="120" height="26" rx="4" '
                   f'fill="#eef" stroke="#447"/>')
        out.append(f'<text x="{x[n]}" y="28" text-anchor="middle">{e(n[:16])}</text>')
        out.append(f'<line x1="{x[n]}" y1="36" x2="{x[n]}" y2="{height - 10}" '
                   'stroke="#99a" stroke-dasharray="4 3"/>')
    y = _TOP
    for r in rows:
        ax = x[r.actor]
        bad = bool(r.failures)
        color, marker = ("#c00", "arrowred") if bad else ("#333", "arrow")
        label = r.call if len(r.call) <= _LABEL else r.call[:_LABEL - 1] + "…"
        out.append(f'<g><title>{e(f"{r.index}. {r.actor}: {r.call}")}</title>'
                   f'<line x1="{ax}" y1="{y}" x2="{kx - 4}" y2="{y}" stroke="{color}" '
                   f'marker-end="url(#{marker})"/>'
                   f'<text x="{kx + 8}" y="{y + 4}" fill="{color}">{e(f"{r.index}. {label}")}'
                   '</text></g>')
        y += _ROW
        ret = r.ret + (f"  (expected {r.expect})" if r.expect else "")
        out.append(f'<line x1="{kx}" y1="{y}" x2="{ax + 4}" y2="{y}" stroke="{color}" '
                   f'stroke-dasharray="5 3" marker-end="url(#{marker})"/>'
                   f'<text x="{(ax + kx) // 2}" y="{y - 4}" text-anchor="middle" '
                   f'fill="{color}">{e(ret)}</text>')
        y += _ROW
        if bad or (r.note and r.actor != "setup"):
            text = _failed_text(r.failures) if bad else r.note
            out.append(f'<text x="{ax}" y="{y - 4}" fill="{color if bad else "#666"}" '
                       f'font-style="italic">{e(text[:2 * _LABEL])}</text>')
            y += _ROW
    out.append("</svg>")
    return "\n".join(out) + "\n"


def html_page(result) -> str:
    """A self-contained HTML page: header, outcome, the SVG diagram, the Mermaid source and
    the trace table.  No scripts, styles or images are loaded from anywhere."""
    from ..scenario.trace import fail_counts
    c = result.compiled
    e = html.escape
    verdict = "PASS: every expectation held" if result.ok else f"FAIL: {fail_counts(result)}"
    items = "".join(f"<li>{e(c.source)}:{f.line}: {e(f.where)}: {e(f.message)}</li>"
                    for f in result.failures)
    items += "".join(f"<li>invariant {e(v.name)} after event {v.event + 1}: {e(v.message)}</li>"
                     for v in result.violations)
    diffs = None
    if len(result.states) == len(result.events) + 1:
        from .itf import run_diffs
        diffs = run_diffs(result)
    changed = "<th>what changed</th>" if diffs is not None else ""
    rows = "".join(
        f"<tr class=\"{'bad' if r.failures else ''}\"><td>{r.index}</td><td>{e(r.actor)}</td>"
        f"<td>{e(r.call)}</td><td>{e(r.ret)}</td><td>{e(r.expect)}</td>"
        f"<td>{e(r.note)} {e(_failed_text(r.failures)) if r.failures else ''}</td>"
        + (f"<td class=\"diff\">{'<br>'.join(e(x) for x in diffs[r.index - 1])}</td>"
           if diffs is not None else "") + "</tr>"
        for r in marked_rows(result))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{e(c.model.name)} — pasidsim</title>
<style>
body {{ font-family: sans-serif; margin: 2em; color: #222; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
table {{ border-collapse: collapse; font-family: monospace; font-size: 12px; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; text-align: left; }}
tr.bad td {{ color: #c00; }}
td.diff {{ color: #246; font-size: 11px; }}
.pass {{ color: #060; }} .fail {{ color: #c00; }}
</style></head><body>
<h1>{e(c.model.name)}</h1>
<p>{e(c.model.demonstrates or "")}</p>
<p>design: <b>{e(c.policy.name)}</b></p>
<p class="{'pass' if result.ok else 'fail'}"><b>{e(verdict)}</b></p>
<ul>{items}</ul>
<h2>Sequence diagram</h2>
{svg_text(result)}
<h2>Mermaid source</h2>
<pre>{e(mermaid_text(result))}</pre>
<h2>Trace</h2>
<table><tr><th>#</th><th>actor</th><th>call</th><th>ret</th><th>expect</th><th>note</th>{changed}</tr>
{rows}</table>
</body></html>
"""


def write_mermaid(result, path: str | Path) -> None:
    """Write :func:`mermaid_text` to ``path``."""
    write_text_atomic(path, mermaid_text(result))


def write_html(result, path: str | Path) -> None:
    """Write :func:`html_page` to ``path``."""
    write_text_atomic(path, html_page(result))


__all__ = ["marked_rows", "mermaid_text", "svg_text", "html_page", "write_mermaid", "write_html"]
