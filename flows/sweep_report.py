"""The report of a design-space sweep (issue 17, item 4) from its result rows (row format and
analysis: :mod:`flows.sweep_pareto`; the CSV export: :mod:`flows.sweep_csv`).

:func:`write_report` writes into ``out_dir``: ``sweep_latency`` and ``sweep_energy`` (PNG and
SVG: cycles, energy against area, a panel per model and one for the mix, every done point faint,
the Pareto front highlighted as a staircase, each base its own marker when the sweep has
several, each panel's title counting its done and failed points, the mix's the architectures
left out); ``sweep_bandwidth`` (only when ``dram_bytes_per_cycle`` takes more than one value:
cycles against bandwidth, a line per architecture); ``sweep.md`` and a self-contained
``sweep.html`` (PNGs embedded): the counts, each front as a table (the varying axes as columns,
the fixed ones stated once, area, cycles, energy, utilization, the dataflow chosen per operator
class), the dataflow counts along each front, the bandwidth table, the failures with their
messages. "area" is the measured area when every done row has one, else the PE count, labelled
"PEs (area proxy)".

Deterministic: the same rows, in any order, give byte-identical Markdown, HTML, SVG and PNG
(no timing in the report; a fixed ``svg.hashsalt``; no date or software metadata). Drawn on Agg
``Figure`` objects under ``rc_context``: no pyplot, the caller's backend and rcParams untouched.

Atomic: everything is written into a hidden temporary folder next to ``out_dir`` (in its parent:
the same file system), then moved into ``out_dir``, created only then; plots first, Markdown
and HTML last. An exception or ``KeyboardInterrupt`` before that leaves ``out_dir`` as it was
(not created if it did not exist); one while moving removes the files already moved (and
``out_dir`` if this call created it). The temporary folder is always removed. A bandwidth plot
left by an earlier report is removed when this report has none.

Layer: flows.
"""

from __future__ import annotations

import base64
import contextlib
import html
import math
import numbers
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from . import sweep_pareto as sp
from .sweep_csv import csv_cell
from .sweep_pareto import MIX, Row, arch_key, arch_label, check_rows, dataflow_choices, metric

__all__ = ["FORMATS", "write_report"]

FORMATS = ("png", "svg")
"""Formats of every plot."""
_Y = {"latency": ("cycles", "latency (cycles)"), "energy": ("energy_pj", "energy (pJ)")}
_RC = {"svg.hashsalt": "lego-codesign-sweep", "svg.fonttype": "path",
       "font.family": "DejaVu Sans"}
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}
_FRONT, _FAINT = "#d62728", "#8c8c8c"
_MARKERS = ("o", "s", "^", "D", "v", "P", "X")


class _Sweep(NamedTuple):
    rows: list[Row]
    models: list[str]
    axes: list[str]                                 # architecture axes that vary
    fixed: dict[str, Any]                           # the others, with their value
    area: str                                       # "area" or "pes"
    area_label: str                                 # "area (mm2 ...)" or "PEs (area proxy)"
    mix: list[Row]
    fronts: dict[str, dict[str, list[Row]]]         # "latency"/"energy" -> model/mix -> front
    bandwidth: dict[str, dict[str, list[tuple[float, float]]]]


def _analyse(rows: Iterable[Mapping[str, Any]]) -> _Sweep:
    rows = check_rows(rows)
    axes = sp.varying_axes(rows)
    fixed = {k: v for k, v in rows[0]["inputs"].items() if k != "model" and k not in axes} \
        if rows else {}
    area = sp.area_metric(rows)
    return _Sweep(rows, sorted({r["inputs"]["model"] for r in rows}), axes,
                  dict(sorted(fixed.items())), area,
                  _AREA_LABEL if area == "area" else "PEs (area proxy)", sp.mix_rows(rows),
                  {kind: sp.fronts(rows, "area", y) for kind, (y, _) in _Y.items()},
                  sp.bandwidth_sensitivity(rows))


def _panels(sw: _Sweep) -> list[tuple[str, list[Row], str]]:
    """(name, done rows, panel title) per model, then the mix."""
    out = []
    for m in sw.models:
        mine = [r for r in sw.rows if r["inputs"]["model"] == m]
        done = [r for r in mine if r["status"] == "done"]
        out.append((m, done, f"{m}: {len(done)} done, {len(mine) - len(done)} failed"))
    left = len({arch_key(r["inputs"]) for r in sw.rows}) - len(sw.mix)
    out.append((MIX, sw.mix, f"mix of {len(sw.models)} models: {len(sw.mix)} architectures,"
                f" {left} left out"))
    return out


def _figure(n: int) -> tuple[Any, list[Any]]:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = min(3, n)
    lines = math.ceil(n / cols)
    fig = Figure(figsize=(5.2 * cols, 4.2 * lines), dpi=100)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(lines, cols, i + 1) for i in range(n)]


def _log_if_wide(ax: Any, xs: Sequence[float], ys: Sequence[float]) -> None:
    """Log axes where the values are positive and span a factor of 30 or more (below that a
    log axis has one labelled decade at most: a linear one reads better)."""
    for vals, scale in ((xs, ax.set_xscale), (ys, ax.set_yscale)):
        if vals and min(vals) > 0 and max(vals) >= 30 * min(vals):
            scale("log")


def _bases(sw: _Sweep) -> dict[Any, tuple[str, str]]:
    """(marker, legend label) per value of the ``base`` axis, in sorted order; ``{}`` when
    the sweep has one base (every point then a circle)."""
    if "base" not in sw.axes:
        return {}
    values = sorted({r["inputs"]["base"] for r in sw.rows}, key=lambda v: sp.natural_key(
        str(v)))
    return {v: (_MARKERS[i % len(_MARKERS)], Path(str(v)).stem) for i, v in enumerate(values)}


def _scatter_by_base(ax: Any, rows: Sequence[Row], x: str, y: str,
                     marks: Mapping[Any, tuple[str, str]], **style: Any) -> None:
    """``rows`` as points, each with its base's marker (:func:`_bases`)."""
    for base, (marker, _) in (marks or {None: ("o", "")}).items():
        mine = [r for r in rows if not marks or r["inputs"]["base"] == base]
        if mine:
            ax.scatter([metric(r, x) for r in mine], [metric(r, y) for r in mine],
                       marker=marker, **style)


def _save(fig: Any, base: Path) -> list[Path]:
    fig.tight_layout()                               # once, not at every save
    paths = [base.with_name(f"{base.name}.{fmt}") for fmt in FORMATS]
    for fmt, path in zip(FORMATS, paths, strict=True):
        fig.savefig(path, format=fmt, metadata=_METADATA[fmt])
    return paths


def _legend(ax: Any, marks: Mapping[Any, tuple[str, str]], points: int, front: int) -> None:
    """Point counts by colour, bases by marker."""
    from matplotlib.lines import Line2D

    def handle(marker: str, color: str, label: str) -> Any:
        return Line2D([], [], linestyle="", marker=marker, color=color, label=label)

    handles = [handle("o", _FAINT, f"all points ({points})"),
               handle("o", _FRONT, f"Pareto front ({front})"),
               *(handle(m, "black", label) for m, label in marks.values())]
    ax.legend(handles=handles, fontsize=7, loc="best")


def _plot_fronts(folder: Path, kind: str, sw: _Sweep) -> list[Path]:
    """``sweep_<kind>.png/svg``: y against area per model and the mix, fronts highlighted."""
    ykey, ylabel = _Y[kind]
    panels = _panels(sw)
    marks = _bases(sw)
    fig, axes = _figure(len(panels))
    for ax, (name, done, title) in zip(axes, panels, strict=True):
        if done:
            xs, ys = [metric(r, sw.area) for r in done], [metric(r, ykey) for r in done]
            front = sw.fronts[kind][name]
            fx, fy = [metric(r, sw.area) for r in front], [metric(r, ykey) for r in front]
            _scatter_by_base(ax, done, sw.area, ykey, marks, s=14, color=_FAINT, alpha=0.35,
                             linewidths=0)
            ax.plot(fx, fy, drawstyle="steps-post", color=_FRONT, linewidth=1.2)
            _scatter_by_base(ax, front, sw.area, ykey, marks, s=30, color=_FRONT, zorder=3)
            _log_if_wide(ax, xs, ys)
            _legend(ax, marks, len(done), len(front))
        else:
            ax.text(0.5, 0.5, "no architecture with every model done" if name == MIX else
                    "no done points", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(sw.area_label)
        ax.set_ylabel(ylabel)
    fig.suptitle(f"{ylabel.split(' (')[0]} vs {sw.area_label}: Pareto fronts "
                 "(both minimized)", fontsize=11)
    return _save(fig, folder / f"sweep_{kind}")


def _plot_bandwidth(folder: Path, sw: _Sweep) -> list[Path]:
    """``sweep_bandwidth.png/svg``: cycles against DRAM bandwidth, a line per architecture."""
    fig, axes = _figure(len(sw.bandwidth))
    for ax, (name, series) in zip(axes, sw.bandwidth.items(), strict=True):
        for label, pts in series.items():
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3,
                    linewidth=1, label=label)
        _log_if_wide(ax, [p[0] for s in series.values() for p in s],
                     [p[1] for s in series.values() for p in s])
        if len(series) <= 12:
            ax.legend(fontsize=6, loc="best")
        ax.set_title(f"{name}: {len(series)} architectures", fontsize=9)
        ax.set_xlabel(f"DRAM bandwidth ({sp.BANDWIDTH_AXIS})")
        ax.set_ylabel("latency (cycles)")
    fig.suptitle("Sensitivity of latency to DRAM bandwidth", fontsize=11)
    return _save(fig, folder / "sweep_bandwidth")


def _cell(value: Any) -> str:
    """A report cell: numbers to 6 significant digits, None as "-"."""
    if value is None or isinstance(value, str):
        return value or "-"
    if isinstance(value, numbers.Real) and not isinstance(value, bool | numbers.Integral):
        return f"{float(value):.6g}"
    return csv_cell(value)


def _front_table(sw: _Sweep, kind: str, name: str) -> tuple[list[str], list[list[str]]]:
    front = sw.fronts[kind][name]
    choices = dataflow_choices(front)
    axes = sw.axes or ["architecture"]
    head = [*axes, sw.area_label, "cycles", "energy pJ", "utilization", *choices.classes]
    body = []
    for row, chosen in zip(front, choices.chosen, strict=True):
        out = row["outputs"]
        cells = [_cell(row["inputs"].get(a)) for a in sw.axes] or ["(fixed)"]
        cells += [_cell(out.get(k)) for k in (sw.area, "cycles", "energy_pj", "utilization")]
        body.append(cells + [chosen.get(c, "-") for c in choices.classes])
    return head, body


_AREA_LABEL = "area (mm\u00b2, 45 nm model)"


def _summary(sw: _Sweep) -> str:
    done = sum(r["status"] == "done" for r in sw.rows)
    archs = len({arch_key(r["inputs"]) for r in sw.rows})
    area = ("the area model's mm^2 (hw.check.area_model: Yosys generic gates of three small "
            "variants per architecture family, priced as NanGate 45 nm cells, plus SRAM bits)"
            if sw.area == "area" else
            "the number of PEs (area proxy: some done points have no measured area)")
    return (f"{len(sw.rows)} points: {done} done, {len(sw.rows) - done} failed; "
            f"{len(sw.models)} models ({', '.join(sw.models) or 'none'}); {archs} "
            f"architectures, {len(sw.mix)} with every model done. The mix sums cycles and "
            "energy over the models (each model run once, one after the other); its "
            "utilization is weighted by cycles. Architectures where some model is not done are "
            f"left out of the mix. Area is {area}. Fronts minimize both coordinates."
            + _rtl_summary(sw.rows))


def _rtl_summary(rows) -> str:
    """What the rtl measure checked (nothing when no row has it)."""
    checked = [(r.get("outputs") or {}).get("rtl") for r in rows if r["status"] == "done"]
    checked = [c for c in checked if c]
    if not checked:
        return ""
    steps = sum(len(c["checked"]) for c in checked)
    ref = sum(len(c["reference_only"]) for c in checked)
    return (f" RTL: {len(checked)} done points ran {steps} sampled steps of their models' "
            f"twins on the generated accelerator bit- and cycle-exact ({ref} more on the "
            "reference machine only); a mismatch would be a failed point.")


def _bandwidth_table(sw: _Sweep) -> tuple[list[str], list[list[str]]]:
    bws = sorted({p[0] for s in sw.bandwidth.values() for pts in s.values() for p in pts})
    body = []
    for name, series in sw.bandwidth.items():
        for label, pts in series.items():
            at = dict(pts)
            body.append([name, label, *(_cell(at.get(b)) for b in bws)])
    return ["model", "architecture", *(f"cycles at {b:g}" for b in bws)], body


def _blocks(sw: _Sweep) -> list[tuple[Any, ...]]:
    """The report as blocks: ("h", level, text), ("p", text), ("table", head, rows),
    ("img", plot kind)."""
    names = [p[0] for p in _panels(sw)]
    failed = [sum(r["inputs"]["model"] == m and r["status"] == "failed" for r in sw.rows)
              for m in sw.models]
    failed.append(len({arch_key(r["inputs"]) for r in sw.rows}) - len(sw.mix))
    counts = [[p[0], str(len(p[1])), str(f), *(str(len(sw.fronts[k][p[0]])) for k in _Y)]
              for p, f in zip(_panels(sw), failed, strict=True)]
    blocks: list[tuple[Any, ...]] = [("h", 1, "Design-space sweep"), ("p", _summary(sw))]
    if sw.fixed:
        blocks.append(("p", "Fixed axes: " + arch_label(sw.fixed) + "."))
    blocks += [("h", 2, "Counts"), ("table", ["model", "done", "failed (mix: left out)",
                                              "on the latency front", "on the energy front"],
                                    counts)]
    flows = []
    for kind, (_, label) in _Y.items():
        blocks += [("h", 2, f"{label.split(' (')[0].capitalize()} vs {sw.area_label}"),
                   ("img", kind)]
        for name in names:
            head, body = _front_table(sw, kind, name)
            blocks += [("h", 3, f"{name}: Pareto front"),
                       ("table", head, body) if body else ("p", "No done points.")]
            for cls, used in dataflow_choices(sw.fronts[kind][name]).counts.items():
                flows.append([f"{kind} / {name}", cls, ", ".join(
                    f"{k} {n}" for k, n in sorted(used.items(), key=lambda kv: (-kv[1], kv[0])))])
    blocks += [("h", 2, "Dataflow choices along the fronts"),
               ("p", "Operators per dataflow, summed over the points of each front."),
               ("table", ["front", "operator class", "dataflows"], flows) if flows
               else ("p", "No dataflows recorded.")]
    if sw.bandwidth:
        blocks += [("h", 2, "Bandwidth sensitivity"), ("img", "bandwidth"),
                   ("table", *_bandwidth_table(sw))]
    fails = [[r["id"], r["inputs"]["model"], arch_label(r["inputs"], sw.axes),
              str(r.get("error") or "(no message)")] for r in sw.rows if r["status"] == "failed"]
    return blocks + [("h", 2, f"Failures ({len(fails)})"),
                     ("table", ["id", "model", "architecture", "error"], fails) if fails
                     else ("p", "None.")]


def _markdown(blocks: Sequence[tuple[Any, ...]]) -> str:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|").replace("\n", " / ") for c in cells) + " |"

    out: list[str] = []
    for b in blocks:
        if b[0] == "h":
            out.append("#" * b[1] + " " + b[2])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "img":
            out.append(f"![{b[1]}](sweep_{b[1]}.png)")
        else:
            out += [line(b[1]), "|" + "---|" * len(b[1]), *(line(r) for r in b[2])]
        out.append("")
    return "\n".join(out)


def _html(blocks: Sequence[tuple[Any, ...]], pngs: Mapping[str, bytes]) -> str:
    def esc(text: str) -> str:
        return html.escape(text).replace("\n", "<br>")

    def line(cells: Sequence[str], tag: str) -> str:
        return "<tr>" + "".join(f"<{tag}>{esc(c)}</{tag}>" for c in cells) + "</tr>"

    body: list[str] = []
    for b in blocks:
        if b[0] == "h":
            body.append(f"<h{b[1]}>{esc(b[2])}</h{b[1]}>")
        elif b[0] == "p":
            body.append(f"<p>{esc(b[1])}</p>")
        elif b[0] == "img":
            data = base64.b64encode(pngs[b[1]]).decode("ascii")
            body.append(f'<p><img alt="{b[1]}" src="data:image/png;base64,{data}"></p>')
        else:
            body += ["<table>", line(b[1], "th"), *(line(r, "td") for r in b[2]), "</table>"]
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}img{max-width:100%}")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>Design-space sweep</title><style>{style}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _install(out: Path, write: Callable[[Path], list[Path]]) -> list[Path]:
    """``write(tmp)`` (files into a hidden temporary folder next to ``out``, returning them in
    the order to move), then each moved into ``out`` (created then); the module docstring's
    contract on errors. The paths in ``out``, in that order."""
    real = out.resolve()
    real.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{real.name}.tmp-", dir=real.parent))
    created, moved = False, []
    try:
        files = write(tmp)
        if not real.is_dir():
            real.mkdir()
            created = True
        for path in files:
            os.replace(path, real / path.name)
            moved.append(path.name)
    except BaseException:
        for name in moved:
            (real / name).unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):
                real.rmdir()
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / name for name in moved]


def write_report(rows: Iterable[Mapping[str, Any]], out_dir: str | Path) -> list[Path]:
    """Write the sweep report of ``rows`` (module docstring) into ``out_dir``, atomically.
    Returns the paths written: ``sweep.md``, ``sweep.html``, then the plots. ``ValueError``
    (before anything is written) for bad rows (:func:`flows.sweep_pareto.check_rows`, a
    missing or non-finite metric) or an ``out_dir`` that exists and is not a folder."""
    import matplotlib

    sw = _analyse(rows)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} exists and is not a folder")

    def write(tmp: Path) -> list[Path]:
        with matplotlib.rc_context(_RC):
            plots = _plot_fronts(tmp, "latency", sw) + _plot_fronts(tmp, "energy", sw)
            if sw.bandwidth:
                plots += _plot_bandwidth(tmp, sw)
        pngs = {p.stem.removeprefix("sweep_"): p.read_bytes() for p in plots
                if p.suffix == ".png"}
        blocks = _blocks(sw)
        (tmp / "sweep.md").write_text(_markdown(blocks), encoding="utf-8")
        (tmp / "sweep.html").write_text(_html(blocks, pngs), encoding="utf-8")
        return [*plots, tmp / "sweep.md", tmp / "sweep.html"]

    moved = _install(out, write)
    if not sw.bandwidth:
        for fmt in FORMATS:
            (out / f"sweep_bandwidth.{fmt}").unlink(missing_ok=True)
    return moved[-2:] + moved[:-2]
