"""Rendering of a ``gan_lab.report.Report``: matplotlib plots, one self-contained HTML page (CSS, the sort
script, SVG plots and PNG grids inline: it opens without a network or the run directory) and a markdown
twin whose plots are SVG files in ``report_files/`` and whose grids link the run's own PNGs."""

from __future__ import annotations

import base64
import html
import io
import json
import os
import re
from datetime import datetime
from pathlib import Path

from gan_lab import __version__
from gan_lab.errors import GanLabError

CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}td:first-child{white-space:nowrap}th{background:#f3f3f3}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:after{content:" \\2195";color:#aaa}
table.sortable th[data-dir=asc]:after{content:" \\25B2";color:#222}
table.sortable th[data-dir=desc]:after{content:" \\25BC";color:#222}
.note{background:#fff4d6;border-left:4px solid #e0a800;padding:.4em .8em;margin:.4em 0}
pre{background:#f6f6f6;padding:.8em;overflow:auto}.plots{display:flex;flex-wrap:wrap;gap:1em}
.plots figure,.grids figure{margin:0}.grids figure{display:inline-block;margin:0 1em 1em 0;vertical-align:top}
.grids img{max-width:100%;image-rendering:pixelated;border:1px solid #ccc}.wide{overflow-x:auto}
figcaption{font-size:.9em;color:#555}
"""

# Sort a table by the clicked column: numbers numerically (data-value), text alphabetically, empty cells last.
SORT_JS = """
document.querySelectorAll("table.sortable th").forEach((th, col) => th.addEventListener("click", () => {
  const table = th.closest("table"), body = table.tBodies[0];
  const dir = th.dataset.dir === "asc" ? "desc" : "asc";
  table.querySelectorAll("th").forEach(h => delete h.dataset.dir);
  th.dataset.dir = dir;
  const key = row => { const c = row.cells[col]; const v = c.dataset.value ?? c.textContent;
                       return v === "" ? null : (isNaN(Number(v)) ? v : Number(v)); };
  const rows = [...body.rows].sort((a, b) => {
    const x = key(a), y = key(b);
    if (x === null || y === null) return (x === null) - (y === null);
    const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
    return dir === "asc" ? order : -order;
  });
  rows.forEach(row => body.appendChild(row));
}));
"""


PROTOCOL = ("Protocol shared by every number in the table (gan_lab/metrics/protocol.py; each metric's own settings "
            "are in the eval JSONs)")


def plot(tag: str, series: dict[str, list[tuple[int, float]]]) -> str:
    """One scalar tag as an SVG document: a line per run (labelled when there are several)."""
    try:
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise GanLabError("gan-lab report draws its plots with matplotlib: pip install -e '.[report]'") from None

    fig = Figure(figsize=(4.2, 2.8), layout="constrained")
    ax = fig.add_subplot()
    for label, points in series.items():
        steps, values = zip(*points)
        ax.plot(steps, values, marker="." if len(points) < 30 else None, linewidth=1.2,
                label=f"job {label}" if label else None)
    ax.set_title(tag, fontsize=10)
    ax.set_xlabel("step", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if len(series) > 1:
        ax.legend(fontsize=7)
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")  # unique ids per figure (a random svg.hashsalt), so inline SVGs don't clash
    return buffer.getvalue()


def curves(report) -> dict[str, str]:
    """{tag: SVG} for every scalar tag of the report's runs."""
    tags = list(dict.fromkeys(tag for run in report.runs for tag in run.scalars))
    return {tag: plot(tag, {run.name: run.scalars[tag] for run in report.runs if run.scalars.get(tag)})
            for tag in sorted(tags)}


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.5g}"
    return value if isinstance(value, str) else json.dumps(value)


def _cell(value, tag: str = "td") -> str:
    attrs = f' class="num" data-value="{value!r}"' if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    return f"<{tag}{attrs}>{html.escape(_text(value))}</{tag}>"


def html_table(table, sortable: bool = False) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.columns)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in table.rows)
    notes = "".join(f'<p class="note">{html.escape(n)}</p>' for n in table.notes)
    cls = ' class="sortable"' if sortable else ""
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{notes}"


def _key_values(values: dict) -> str:
    return "<table><tbody>" + "".join(f"<tr><th>{html.escape(k)}</th>{_cell(v)}</tr>" for k, v in values.items()) \
        + "</tbody></table>"


def _png(path: Path) -> str:
    """An inline <img> of a PNG file; small grids magnified by a whole factor (pixelated) to about 600 px."""
    data = path.read_bytes()
    width = int.from_bytes(data[16:20], "big")  # the IHDR chunk's width
    shown = min(width * max(1, 600 // max(width, 1)), 1100)
    return f'src="data:image/png;base64,{base64.b64encode(data).decode()}" style="width:{shown}px"'


def _svg_inline(svg: str) -> str:
    return svg[svg.index("<svg"):]  # without the XML declaration and doctype


def _grids(report, source) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(run label, [(caption, source(file))])]: ``source`` gives an <img>'s attributes or a markdown link."""
    return [(f"job {run.name}" if report.kind == "sweep" else "", [(f"{name} (step {step})" if step >= 0 else name,
                                                                    source(file)) for name, step, file in run.grids])
            for run in report.runs if run.grids]


def _sections(report) -> list[str]:
    what = "sweep of " + str(len(report.runs)) + " jobs" if report.kind == "sweep" else "run"
    return [f"gan-lab report: {report.path}", f"A {what}, written {datetime.now():%Y-%m-%d %H:%M} by gan-lab {__version__}."]


def to_html(report, svgs: dict[str, str]) -> str:
    title, subtitle = _sections(report)
    parts = [f"<h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p>", "<h2>Metrics</h2>"]
    if report.metrics.rows:
        parts.append("<p>gan-lab eval's reports (click a column to sort).</p><div class=\"wide\">"
                     + html_table(report.metrics, True) + "</div>")
        parts.append(f"<details><summary>{PROTOCOL}</summary>{_key_values(report.shared_protocol)}</details>")
    else:
        parts.append("<p>No evaluation yet: <code>gan-lab eval ckpt=&lt;run&gt;</code> writes them.</p>")
    parts.append("<h2>Config</h2>")
    if report.kind == "sweep":
        parts.append("<p>The keys that differ between jobs:</p>" + html_table(report.config, True))
        parts.append(f"<details><summary>Shared by every job</summary><pre>{html.escape(report.shared_config)}</pre>"
                     "</details>")
    else:
        parts.append(f"<details open><summary>config.yaml (resolved)</summary>"
                     f"<pre>{html.escape(report.shared_config)}</pre></details>")
    parts.append("<h2>Environment</h2>")
    if not report.environment.rows:
        parts.append("<p>Not recorded (runs before env.json).</p>")
    else:
        parts.append(_key_values(report.shared_environment))
        if len(report.environment.columns) > 1:
            parts.append("<p>Per session:</p>" + html_table(report.environment))
    parts.append("<h2>Curves</h2><div class=\"plots\">" + "".join(
        f"<figure>{_svg_inline(svg)}</figure>" for svg in svgs.values()) + "</div>")
    parts.append("<h2>Samples</h2><div class=\"grids\">")
    for label, images in _grids(report, _png):
        parts.append(f"<h3>{html.escape(label)}</h3>" if label else "")
        parts += [f'<figure><img {attrs} alt="{html.escape(c)}"><figcaption>{html.escape(c)}</figcaption></figure>'
                  for c, attrs in images]
    parts.append("</div>")
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}</style></head><body>{''.join(parts)}<script>{SORT_JS}</script></body></html>")


def _md_table(table) -> str:
    def cell(value) -> str:
        return _text(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.rows]
    return "\n".join(lines + [""] + [f"> {n}\n" for n in table.notes])


def _md_list(values: dict) -> str:
    return "\n".join(f"- {k}: {_text(v)}" for k, v in values.items())


def to_markdown(report, svg_files: dict[str, Path], out: Path) -> str:
    title, subtitle = _sections(report)
    parts = [f"# {title}", subtitle, "## Metrics"]
    if report.metrics.rows:
        parts += [_md_table(report.metrics), f"{PROTOCOL}:", _md_list(report.shared_protocol)]
    else:
        parts.append("No evaluation yet.")
    parts.append("## Config")
    if report.kind == "sweep":
        parts += ["The keys that differ between jobs:", _md_table(report.config), "Shared by every job:"]
    parts.append(f"```yaml\n{report.shared_config}```")
    parts.append("## Environment")
    parts.append(_md_list(report.shared_environment) or "Not recorded (runs before env.json).")
    if len(report.environment.columns) > 1:
        parts.append(_md_table(report.environment))
    parts.append("## Curves")
    parts.append("\n".join(f"![{tag}]({file.relative_to(out).as_posix()})" for tag, file in svg_files.items()))
    parts.append("## Samples")
    for label, images in _grids(report, lambda p: Path(os.path.relpath(p, out)).as_posix()):
        parts += [f"### {label}"] if label else []
        parts += [f"![{c}]({src})" for c, src in images]
    return "\n\n".join(parts) + "\n"


def render(report, out: Path) -> dict[str, Path]:
    """Write ``report.html``, ``report.md`` and the plots ``report_files/*.svg`` into ``out``."""
    svgs = curves(report)
    files_dir = out / "report_files"
    files_dir.mkdir(parents=True, exist_ok=True)
    svg_files = {}
    for tag, svg in svgs.items():
        svg_files[tag] = files_dir / (re.sub(r"[^A-Za-z0-9_.-]+", "_", tag) + ".svg")
        svg_files[tag].write_text(svg)
    paths = {"html": out / "report.html", "md": out / "report.md"}
    paths["html"].write_text(to_html(report, svgs))
    paths["md"].write_text(to_markdown(report, svg_files, out))
    return paths
