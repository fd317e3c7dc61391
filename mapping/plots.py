"""Figures of a mapped model: per-operator utilization and a roofline, from a schedule's JSON
form (:meth:`mapping.schedule.Schedule.to_dict`, or the same dict read back).

:func:`plot_schedule` writes ``<out_base>_utilization.<fmt>`` and ``<out_base>_roofline.<fmt>``
for every format asked (``png``, ``svg``):

* **utilization**: one bar per entry, in schedule order, x its ``stage.op``, y its
  ``utilization`` (0..1), colored by ``target``; entries with 0 MACs (data movement) stand at 0.
* **roofline**: x the operational intensity (MACs per DRAM byte), y the achieved MAC/s
  (``macs / seconds``), both log; one point per entry with MACs, colored by target, the
  :data:`LABELLED` entries of most time (``seconds x count``) named; the roofs
  ``min(peak_macs_per_s, dram_bytes_per_s x intensity)`` from the header. Entries with 0 MACs,
  or with MACs but 0 DRAM bytes (no finite intensity), are left out and counted in the title.

Deterministic: the same schedule gives byte-identical files (Agg renders the PNG, the SVG's ids
come from a fixed ``svg.hashsalt``, no date or software metadata). Matplotlib is imported
inside :func:`plot_schedule` (``import mapping`` stays light) and drawn on ``Figure`` objects
with an Agg canvas: no pyplot, no change to the caller's backend or ``rcParams``. Everything is
validated before anything is written, every file is rendered to a hidden temporary name in the
target folder and renamed into place only when all are done: an error leaves no file behind.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

__all__ = ["FORMATS", "LABELLED", "TARGET_COLORS", "plot_schedule"]

FORMATS = ("png", "svg")
"""Formats :func:`plot_schedule` writes."""
LABELLED = 5
"""Roofline points named: the entries of most total time."""
TARGET_COLORS = {"accel": "#1f77b4", "host": "#ff7f0e", "gpu": "#2ca02c",
                 "accel+host": "#9467bd"}
"""Color per target; other targets take :data:`_MORE_COLORS` in order of appearance."""
_MORE_COLORS = ("#d62728", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
_HEADER = ("model", "target", "peak_macs_per_s", "dram_bytes_per_s", "entries")
_ENTRY = ("stage", "op", "target", "count", "seconds", "macs", "dram_bytes", "utilization")
_RC = {"svg.hashsalt": "lego-codesign", "svg.fonttype": "path", "font.family": "DejaVu Sans"}
_METADATA = {"png": {"Software": None}, "svg": {"Date": None, "Creator": None}}


class _Entry(NamedTuple):
    name: str
    target: str
    count: int
    seconds: float
    macs: int
    dram_bytes: int
    utilization: float


def _key(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise ValueError(f"{where}: missing key {key!r}")
    return d[key]


def _number(where: str, key: str, value: Any, *, integer: bool = False,
            positive: bool = False, top: float = math.inf) -> Any:
    """``value`` checked: a finite number (an int if ``integer``), >= 0 (> 0 if ``positive``),
    <= ``top``; ``ValueError`` naming the key and the value otherwise."""
    kinds = (int,) if integer else (int, float)
    ok = isinstance(value, kinds) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0) or value > top:
        want = "an int" if integer else "a finite number"
        rng = "> 0" if positive else f"in [0, {top:g}]" if top < math.inf else ">= 0"
        raise ValueError(f"{where}: {key} must be {want} {rng}, got {value!r}")
    return value


def _entry(e: Any, n: int) -> _Entry:
    where = f"schedule entry {n}"
    if not isinstance(e, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(e).__name__}")
    text = {}
    for key in ("stage", "op", "target"):
        v = _key(e, key, where)
        if not isinstance(v, str) or not v:
            raise ValueError(f"{where}: {key} must be a non-empty string, got {v!r}")
        text[key] = v
    where = f"schedule entry {n} ({text['stage']}.{text['op']})"
    num = {k: _number(where, k, _key(e, k, where), integer=k in ("count", "macs", "dram_bytes"),
                      top=1 + 1e-9 if k == "utilization" else math.inf)
           for k in ("count", "seconds", "macs", "dram_bytes", "utilization")}
    if num["macs"] and not num["seconds"]:
        raise ValueError(f"{where}: {num['macs']} MACs in 0 seconds")
    return _Entry(f"{text['stage']}.{text['op']}", text["target"], num["count"],
                  float(num["seconds"]), num["macs"], num["dram_bytes"],
                  min(float(num["utilization"]), 1.0))


def _validate(schedule: Any) -> tuple[str, float, float, list[_Entry]]:
    """(title, peak MAC/s, DRAM bytes/s, entries) of ``schedule``; ``ValueError`` naming a
    missing key, an empty entry list or a bad value."""
    if not isinstance(schedule, Mapping):
        raise ValueError(f"schedule must be a mapping, got {type(schedule).__name__}")
    for key in _HEADER:
        _key(schedule, key, "schedule")
    peak = float(_number("schedule", "peak_macs_per_s", schedule["peak_macs_per_s"],
                         positive=True))
    bw = float(_number("schedule", "dram_bytes_per_s", schedule["dram_bytes_per_s"],
                       positive=True))
    raw = schedule["entries"]
    if not isinstance(raw, Sequence) or isinstance(raw, str) or not raw:
        raise ValueError(f"schedule: entries must be a non-empty list, got {raw!r}")
    entries = [_entry(e, n) for n, e in enumerate(raw)]
    on = schedule.get("arch") or schedule.get("device")
    title = f"{schedule['model']}" + (f" on {on}" if on else "") + f" ({schedule['target']})"
    return title, peak, bw, entries


def _colors(entries: list[_Entry]) -> dict[str, str]:
    """Target -> color: :data:`TARGET_COLORS`, then the spares in order of appearance."""
    out, spare = {}, iter(_MORE_COLORS * (1 + len(entries) // len(_MORE_COLORS)))
    for e in entries:
        if e.target not in out:
            out[e.target] = TARGET_COLORS.get(e.target) or next(spare)
    return out


def _legend(ax: Any, colors: dict[str, str]) -> None:
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=c, label=t) for t, c in colors.items()], title="target",
              fontsize=8, loc="best")


def _utilization(fig: Any, title: str, entries: list[_Entry], colors: dict[str, str]) -> None:
    ax = fig.add_subplot()
    xs = range(len(entries))
    util = [e.utilization if e.macs else 0.0 for e in entries]
    ax.bar(xs, util, color=[colors[e.target] for e in entries], width=0.8)
    ax.set_xticks(list(xs), [e.name for e in entries], rotation=90, fontsize=7)
    ax.set_xlim(-0.6, len(entries) - 0.4)
    ax.set_ylim(0, 1)
    ax.set_ylabel("utilization (useful MACs / peak)")
    moves = sum(1 for e in entries if not e.macs)
    ax.set_title(f"{title}: per-operator utilization" + (
        f"\n({moves} data-movement entries, 0 MACs, at 0)" if moves else ""), fontsize=10)
    _legend(ax, colors)
    fig.tight_layout()


def _roofline(fig: Any, title: str, peak: float, bw: float, entries: list[_Entry],
              colors: dict[str, str]) -> None:
    ax = fig.add_subplot()
    pts = [e for e in entries if e.macs and e.dram_bytes]
    ridge = peak / bw
    xs = [e.macs / e.dram_bytes for e in pts] + [ridge]
    ys = [e.macs / e.seconds for e in pts] + [peak]
    lo_x, hi_x = min(xs) / 4, max(xs) * 4
    ax.plot([lo_x, ridge, hi_x], [bw * lo_x, peak, peak], color="black", linewidth=1.2,
            label=f"roofs: {peak:.3g} MAC/s,\n{bw:.3g} DRAM B/s")
    for target, color in colors.items():
        mine = [e for e in pts if e.target == target]
        if mine:
            ax.scatter([e.macs / e.dram_bytes for e in mine], [e.macs / e.seconds for e in mine],
                       color=color, label=target, s=18, zorder=3)
    top = sorted(range(len(pts)), key=lambda i: (-pts[i].seconds * pts[i].count, i))[:LABELLED]
    top.sort(key=lambda i: (-pts[i].macs / pts[i].seconds, i))     # labels stacked as points
    for rank, i in enumerate(top):
        e = pts[i]
        ax.annotate(e.name, (e.macs / e.dram_bytes, e.macs / e.seconds),
                    xytext=(12, 14 - 12 * rank), textcoords="offset points", fontsize=7,
                    arrowprops={"arrowstyle": "-", "linewidth": 0.5, "color": "gray"})
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo_x, hi_x)
    ax.set_ylim(min(ys) / 4, peak * 3)
    ax.set_xlabel("operational intensity (MACs per DRAM byte)")
    ax.set_ylabel("achieved MAC/s")
    left = [f"{n} with 0 MACs" for n in [sum(1 for e in entries if not e.macs)] if n] + [
        f"{n} with 0 DRAM bytes" for n in [sum(1 for e in entries if e.macs and not e.dram_bytes)]
        if n]
    ax.set_title(f"{title}: roofline" + (f"\n(not shown: {', '.join(left)})" if left else ""),
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()


def _outputs(out_base: str | Path, formats: Sequence[str]) -> tuple[Path, list[str]]:
    base = Path(out_base)
    if not base.name:
        raise ValueError(f"out_base must name a file stem, got {str(out_base)!r}")
    if not base.parent.is_dir():
        raise ValueError(f"cannot write {str(base)!r}: folder {str(base.parent)!r} does not "
                         "exist")
    fmts = [formats] if isinstance(formats, str) else list(formats)
    bad = [f for f in fmts if f not in FORMATS]
    if bad or not fmts:
        raise ValueError(f"formats must be a non-empty selection of {FORMATS}, got {formats!r}")
    return base, list(dict.fromkeys(fmts))


def plot_schedule(schedule: Mapping[str, Any], out_base: str | Path,
                  formats: Sequence[str] = FORMATS) -> list[Path]:
    """Write the utilization and roofline figures of ``schedule`` (its JSON form: the header's
    ``model``, ``target``, ``peak_macs_per_s``, ``dram_bytes_per_s``, ``arch`` / ``device`` if
    any, and per entry ``stage``, ``op``, ``target``, ``count``, ``seconds``, ``macs``,
    ``dram_bytes``, ``utilization``) to ``<out_base>_utilization.<fmt>`` and
    ``<out_base>_roofline.<fmt>`` for each of ``formats``; returns the paths written, utilization
    first. ``ValueError`` naming a missing key, an empty entry list, a bad value, an unknown
    format or a missing folder, before anything is written; no file is left behind on error."""
    title, peak, bw, entries = _validate(schedule)
    base, fmts = _outputs(out_base, formats)
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    colors = _colors(entries)
    width = min(40.0, max(6.0, 0.16 * len(entries) + 2))
    written: list[tuple[Path, Path]] = []
    try:
        with matplotlib.rc_context(_RC):
            for kind, size in (("utilization", (width, 4.8)), ("roofline", (7.0, 5.0))):
                fig = Figure(figsize=size, dpi=100)
                FigureCanvasAgg(fig)
                if kind == "utilization":
                    _utilization(fig, title, entries, colors)
                else:
                    _roofline(fig, title, peak, bw, entries, colors)
                for fmt in fmts:
                    path = base.with_name(f"{base.name}_{kind}.{fmt}")
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
                    written.append((tmp, path))
                    fig.savefig(tmp, format=fmt, metadata=_METADATA[fmt])
        for tmp, path in written:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in written:
            tmp.unlink(missing_ok=True)
        raise
    return [path for _, path in written]
