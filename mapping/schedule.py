"""A mapped model: one :class:`Entry` per operator of the graph (where it runs, how, what it
costs), the totals, and the JSON form the CLI writes and the plots read.

Costs of an entry are one execution's; ``count`` is how many times the graph runs it (its
stage's repeat); totals are sums of ``count`` x cost. ``utilization`` is the operator's useful
MACs (the IR's, not the padded or masked ones the array also spends) over the peak's in its
time. Accelerator entries have ``cycles`` and ``energy_pj``; GPU entries have neither (a
roofline time, no energy model). Writing is atomic (a temporary file renamed): a failed write
leaves nothing half-written.

Pure Python.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["Entry", "Schedule", "load_schedule", "write_json_atomic"]


@dataclass(frozen=True)
class Entry:
    """One operator of a mapped graph (module docstring). ``target``: "accel", "host", "gpu"
    or "accel+host" (a decomposed operator); ``lowering``: the candidate that won (a kernel,
    "gemm", "unfused_qb256" ...); ``schedule``: its parameters (dataflow's tiles, blocks,
    steps); ``candidates``: every candidate tried -> its cycles (or seconds on a GPU), or the
    reason it could not run."""

    stage: str
    op: str
    kind: str
    count: int
    target: str
    lowering: str
    dataflow: str
    seconds: float
    cycles: int | None
    macs: int
    dram_bytes: int
    utilization: float
    energy_pj: float | None
    bound: str
    exact: bool
    schedule: dict[str, Any] = field(default_factory=dict, hash=False)
    candidates: dict[str, Any] = field(default_factory=dict, hash=False)
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """``stage.op``."""
        return f"{self.stage}.{self.op}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able fields."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(schedule=dict(self.schedule), candidates=dict(self.candidates),
                   notes=list(self.notes))
        return out


_TOTALS = ("seconds", "cycles", "macs", "dram_bytes", "energy_pj")


@dataclass(frozen=True)
class Schedule:
    """A graph mapped onto one target: ``arch`` (an accelerator) or ``device`` (a GPU), the
    header the plots need (peaks per second), the entries in graph order, and
    ``mapper_seconds`` (wall time of the mapping, informational)."""

    model: str
    target: str
    arch: str | None
    device: str | None
    clock_hz: float | None
    peak_macs_per_s: float
    dram_bytes_per_s: float
    entries: tuple[Entry, ...]
    config: dict[str, Any] = field(default_factory=dict, hash=False)
    mapper_seconds: float = 0.0

    @property
    def totals(self) -> dict[str, Any]:
        """Sums of ``count`` x cost over the entries (``cycles``, ``energy_pj`` None on a
        GPU); ``by_target`` and ``by_kind``: seconds per target and per op kind."""
        out: dict[str, Any] = {}
        for key in _TOTALS:
            vals = [getattr(e, key) for e in self.entries]
            out[key] = None if any(v is None for v in vals) else sum(
                v * e.count for v, e in zip(vals, self.entries, strict=True))
        for group, attr in (("by_target", "target"), ("by_kind", "kind")):
            acc: dict[str, float] = {}
            for e in self.entries:
                acc[getattr(e, attr)] = acc.get(getattr(e, attr), 0.0) + e.seconds * e.count
            out[group] = acc
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (entries as dicts, the totals included)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "entries"}
        out["config"] = dict(self.config)
        out["entries"] = [e.to_dict() for e in self.entries]
        out["totals"] = self.totals
        return out

    def write_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` to ``path`` atomically; the path."""
        return write_json_atomic(path, self.to_dict())


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """``data`` as indented JSON at ``path``, through a temporary file in the same folder
    renamed into place (nothing half-written on failure); ``ValueError`` if the folder does
    not exist."""
    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not "
                         "exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_schedule(data: Mapping[str, Any]) -> Schedule:
    """The :class:`Schedule` of its :meth:`~Schedule.to_dict` form (``totals`` recomputed);
    ``ValueError`` naming a missing or unknown key."""
    if not isinstance(data, Mapping):
        raise ValueError(f"a schedule must be a mapping, got {type(data).__name__}")
    known = {f.name for f in fields(Schedule)} | {"totals"}
    _keys(data, known, {"model", "target", "entries"}, "schedule")
    entry_fields = {f.name for f in fields(Entry)}
    entries = []
    for n, e in enumerate(data["entries"]):
        _keys(e, entry_fields, entry_fields - {"schedule", "candidates", "notes"},
              f"schedule entry {n}")
        entries.append(Entry(**{**e, "notes": tuple(e.get("notes", ()))}))
    rest = {k: v for k, v in data.items() if k not in ("entries", "totals")}
    return Schedule(**rest, entries=tuple(entries))


def _keys(d: Any, known: set[str], required: set[str], where: str) -> None:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where} must be a mapping, got {type(d).__name__}")
    extra, missing = sorted(set(d) - known), sorted(required - set(d))
    if extra or missing:
        raise ValueError(f"{where}: " + (f"unknown key {extra[0]!r}" if extra else
                                         f"missing key {missing[0]!r}"))
