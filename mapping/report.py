"""Text forms of mapped models: :func:`format_schedule` (a line per operator and the totals,
what ``lego map`` prints) and :func:`format_comparison` (per operator kind, several
architectures side by side with ratios to the first: ``lego compare``).

Pure Python.
"""

from __future__ import annotations

from collections.abc import Sequence

from .schedule import Entry, Schedule

__all__ = ["format_comparison", "format_schedule", "si"]


def si(x: float | int | None, unit: str = "") -> str:
    """``x`` with an SI prefix (p .. T), three significant digits ("-" for None)."""
    if x is None:
        return "-"
    if isinstance(x, int) and abs(x) < 1000:
        return f"{x}{unit}"
    for div, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"), (1.0, ""),
                        (1e-3, "m"), (1e-6, "u"), (1e-9, "n"), (1e-12, "p")):
        if abs(x) >= div:
            return f"{x / div:.3g}{prefix}{unit}"
    return f"{x:.3g}{unit}"


def _dims(v: object) -> str:
    return "x".join(map(str, v)) if isinstance(v, list | tuple) else str(v)


def _tiles(e: Entry) -> str:
    """The schedule's parameters in a few characters."""
    s = e.schedule
    if isinstance(s.get("parts"), list):
        return f"{len(s['parts'])} steps"
    if "tile" in s:
        return " b".join(_dims(s.get(k)) for k in ("tile", "block") if s.get(k) is not None)
    if "chunk" in s:
        return f"chunk {s['chunk']}"
    for key in ("block_rows", "tile_tokens"):
        if key in s:
            return f"{key.split('_')[0]} {s[key]}"
    return ""


def format_schedule(s: Schedule) -> str:
    """The table of ``s``: one line per operator (count, target, lowering, dataflow, tiles,
    cycles or time, utilization, DRAM bytes, energy, bound), then the totals."""
    where = s.arch if s.target == "accel" else s.device
    head = (f"{s.model} on {where} ({s.target}): {len(s.entries)} operators, mapped in "
            f"{s.mapper_seconds:.2f} s")
    cols = ("operator", "x", "target", "lowering", "dataflow", "tiles",
            "cycles" if s.target == "accel" else "time", "util", "DRAM", "energy", "bound")
    rows = [cols]
    for e in s.entries:
        rows.append((e.name, str(e.count), e.target, e.lowering, e.dataflow, _tiles(e),
                     si(e.cycles) if s.target == "accel" else si(e.seconds, "s"),
                     f"{e.utilization:.2f}", si(e.dram_bytes, "B"),
                     si(e.energy_pj and e.energy_pj * 1e-12, "J") if e.energy_pj else "-",
                     e.bound))
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    lines = [head] + ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                      for r in rows]
    t = s.totals
    energy = f", energy {si(t['energy_pj'] * 1e-12, 'J')}" if t["energy_pj"] is not None else ""
    cycles = f"{si(t['cycles'])} cycles = " if t["cycles"] is not None else ""
    lines.append(f"total: {cycles}{si(t['seconds'], 's')}, {si(t['macs'])} MACs, DRAM "
                 f"{si(t['dram_bytes'], 'B')}{energy}")
    share = ", ".join(f"{k} {v / t['seconds']:.1%}" for k, v in t["by_target"].items()
                      if t["seconds"])
    lines.append(f"time by target: {share}")
    return "\n".join(lines)


def _by_kind(s: Schedule, attr: str) -> dict[str, float]:
    out: dict[str, float] = {}
    for e in s.entries:
        out[e.kind] = out.get(e.kind, 0.0) + (getattr(e, attr) or 0) * e.count
    return out


def format_comparison(schedules: Sequence[Schedule]) -> str:
    """Cycles and energy per operator kind of each accelerator schedule of one model, with
    each one's ratio to the first (``B/A``: > 1 when the first, A, needs less); ``ValueError``
    unless two or more accelerator schedules of the same model."""
    if len(schedules) < 2 or any(s.target != "accel" for s in schedules) or len(
            {s.model for s in schedules}) != 1:
        raise ValueError("compare takes two or more accelerator schedules of one model")
    first, names = schedules[0], [s.arch for s in schedules]
    lines = [f"{first.model}: ratios are each architecture's over {names[0]}'s "
             "(> 1: it needs more)"]
    for attr, label, scale, unit in (("cycles", "cycles", 1.0, ""),
                                     ("energy_pj", "energy", 1e-12, "J")):
        per = [_by_kind(s, attr) for s in schedules]
        kinds = list(dict.fromkeys(k for p in per for k in p))
        head = [label] + names + [f"{n}/{names[0]}" for n in names[1:]]
        rows = [head]
        for kind in kinds + ["total"]:
            vals = [sum(p.values()) if kind == "total" else p.get(kind, 0.0) for p in per]
            rows.append([kind] + [si(v * scale, unit) for v in vals]
                        + [f"{v / vals[0]:.2f}x" if vals[0] else "-" for v in vals[1:]])
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        lines += ["", *("  ".join(c.rjust(w) if i else c.ljust(w)
                                  for i, (c, w) in enumerate(zip(r, widths, strict=True)))
                        for r in rows)]
    return "\n".join(lines)
