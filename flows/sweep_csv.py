"""The CSV export of a design-space sweep (issue 17, item 4) from its result rows (row format:
:mod:`flows.sweep_pareto`).

:func:`write_csv`: one line per point. Columns: the sorted input keys; the sorted output keys of
the done rows, each prefixed ``out.`` (never clashing with an input axis such as
``dataflows``); ``status``; ``error``. Cells: numbers as ``repr`` (floats: shortest round trip),
None empty, mappings and lists (the dataflow counts) as canonical JSON. No id (a store's id may
encode versions; the inputs identify a point) and no timing (the rows' ``seconds``, output keys
matching :data:`TIMING`). Lines sorted by model, then the other input columns in order (numbers
numerically, text with digit runs as numbers): two stores' CSVs ``diff`` only where they
differ. Written to a temporary file in the same folder, then renamed.

Layer: flows.
"""

from __future__ import annotations

import csv
import io
import json
import numbers
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from hw.rtl.emit import write_text_atomic

from . import sweep_pareto as sp
from .sweep_pareto import check_rows

__all__ = ["TIMING", "csv_cell", "write_csv"]

TIMING = re.compile(r"(?:^|_)(?:seconds|secs|sec|elapsed|wall|wall_s|time|time_s|duration)$")
"""Output keys left out of the CSV as timings."""


def csv_cell(value: Any) -> str:
    """``value`` as a CSV cell (module docstring: cells)."""
    if value is None or isinstance(value, str):
        return value or ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return json.dumps(value, sort_keys=True, separators=(",", ":"),
                      default=sp.json_default)


def _sort_key(value: Any) -> tuple[Any, ...]:
    """Numbers first, numerically; then text by :func:`flows.sweep_pareto.natural_key`."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return (0, float(value))
    return (1, sp.natural_key(csv_cell(value))) if value is not None else (2, [])


def write_csv(rows: Iterable[Mapping[str, Any]], path: str | Path) -> Path:
    """Write one CSV line per point of ``rows`` to ``path`` (module docstring: columns, cells,
    order), atomically; its parent folder is created if missing. Returns ``path``.
    ``ValueError`` for bad rows or a ``path`` that is a folder."""
    rows = check_rows(rows)
    target = Path(path)
    if target.is_dir():
        raise ValueError(f"csv path {str(target)!r} is a folder")
    ins = sorted({k for r in rows for k in r["inputs"]})
    outs = sorted({k for r in rows if r["status"] == "done" for k in r["outputs"]
                   if not TIMING.search(k)})
    order = ["model", *(k for k in ins if k != "model")]
    ordered = sorted(rows, key=lambda r: [_sort_key(r["inputs"].get(k)) for k in order])
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([*ins, *(f"out.{k}" for k in outs), "status", "error"])
    for r in ordered:
        got = r["outputs"] if r["status"] == "done" else {}
        writer.writerow([*(csv_cell(r["inputs"].get(k)) for k in ins),
                         *(csv_cell(got.get(k)) for k in outs), r["status"],
                         csv_cell(r.get("error")) if r["status"] == "failed" else ""])
    target.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(target, text.getvalue())
