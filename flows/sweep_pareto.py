"""Analysis of a design-space sweep (issue 17, item 4) over plain result rows: Pareto fronts per
model and for the model mix, the dataflow chosen per operator class along a front, and the
sensitivity of latency to DRAM bandwidth. Pure Python + numpy; no store, no plotting.

**Rows** (:func:`check_rows`): dicts ``{"id", "inputs", "status", "outputs", "error",
"seconds"}``. ``inputs`` holds a point's axes, always ``"model"`` (and ``"base"``); every key
but ``"model"`` is an *architecture axis*: two rows are the same architecture iff their inputs
minus ``"model"`` are equal (:func:`arch_key`). ``status`` is ``"done"`` or ``"failed"``; only
done rows are analysed, and their ``outputs`` give ``cycles`` (latency), ``energy_pj``, ``pes``,
``area`` (None when not measured), ``utilization`` and ``dataflows`` ({op class: {dataflow:
operators}}). Ids are unique and no two rows share their inputs (one row per point).

**Metrics** (:data:`METRICS`), all minimized: ``area``, ``cycles``, ``energy_pj``, ``pes``.
``"area"`` stands for the measured area when every done row has one, else for ``"pes"`` (the
number of PEs as the area proxy) for *all* rows, so one plot never mixes units
(:func:`area_metric`).

**Pareto front** (:func:`pareto_front`): point *q* is dominated iff some point *p* has
``p.x <= q.x`` and ``p.y <= q.y`` with ``p != q``; the front is every point not dominated.
Equal points do not dominate each other: duplicates on the front are all kept. Computed in
O(n log n): sort by (x, y, index), sweep x upwards keeping the least y seen at strictly smaller
x; the first point of each x group is on the front iff its y is below that least y, and so is
every point equal to it.

**Mix** (:func:`mix_rows`): per architecture on which *every* model of the rows (done or
failed anywhere) is done, one synthetic row of model :data:`MIX`: ``cycles`` and ``energy_pj``
summed over the models (running each model of the mix once, one after the other), ``pes`` and
``area`` those of the architecture (``ValueError`` if the models disagree), ``utilization``
weighted by cycles (= total useful MACs / (PEs x total cycles)), ``dataflows`` counts summed.
Architectures missing a done model are left out of the mix.

Errors: ``ValueError`` naming the row and the offending value (a missing key, an unknown
status or metric, a NaN or infinite coordinate, a duplicate point, the reserved model name).

Layer: flows.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

__all__ = ["BANDWIDTH_AXIS", "METRICS", "MIX", "DataflowChoices", "arch_key", "arch_label",
           "area_metric", "bandwidth_sensitivity", "check_rows", "dataflow_choices", "fronts",
           "json_default", "metric", "mix_rows", "natural_key", "pareto_front",
           "varying_axes"]

Row = dict[str, Any]
METRICS = ("area", "cycles", "energy_pj", "pes")
"""Metrics a front can be drawn over; all minimized."""
MIX = "mix"
"""The model name of the mix rows (reserved: no real model may use it)."""
BANDWIDTH_AXIS = "dram_bytes_per_cycle"
"""The input axis of :func:`bandwidth_sensitivity`."""
STATUSES = ("done", "failed")


def _finite(value: Any, where: str) -> float:
    """``value`` as a float; ``ValueError`` naming ``where`` unless a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where} = {value!r} is not a number")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{where} = {value!r} is not a finite number")
    return out


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``points`` (x, y), both minimized (module docstring):
    ordered by increasing x, duplicates of a front point all kept, in index order. O(n log n).
    ``ValueError`` naming the point if one is not a pair of finite real numbers."""
    coords = []
    for i, p in enumerate(points):
        try:
            x, y = p
        except (TypeError, ValueError):
            raise ValueError(f"point {i}: {p!r} is not an (x, y) pair") from None
        coords.append((_finite(x, f"point {i} x"), _finite(y, f"point {i} y")))
    if not coords:
        return []
    arr = np.asarray(coords, dtype=float)
    order = np.lexsort((np.arange(len(arr)), arr[:, 1], arr[:, 0]))   # x, then y, then index
    xs, ys = arr[order, 0], arr[order, 1]
    front: list[int] = []
    best, i = math.inf, 0                  # least y over all points of strictly smaller x
    while i < len(order):
        j = i
        while j < len(order) and xs[j] == xs[i]:
            j += 1
        if ys[i] < best:                   # the group's least y; its equals are kept too
            front += [int(order[k]) for k in range(i, j) if ys[k] == ys[i]]
            best = float(ys[i])
        i = j
    return front


def json_default(value: Any) -> Any:
    """``json.dumps`` fallback (keys, labels, CSV cells): numpy numbers as Python numbers,
    anything else as its repr."""
    if isinstance(value, numbers.Integral):
        return int(value)
    return float(value) if isinstance(value, numbers.Real) else repr(value)


def arch_key(inputs: Mapping[str, Any]) -> str:
    """The architecture of a point: canonical JSON of ``inputs`` minus ``"model"``."""
    return json.dumps({k: v for k, v in inputs.items() if k != "model"}, sort_keys=True,
                      separators=(",", ":"), default=json_default)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else \
        json.dumps(value, sort_keys=True, default=json_default)


def arch_label(inputs: Mapping[str, Any], axes: Iterable[str] | None = None) -> str:
    """``"k=v, ..."`` over ``axes`` (default: every key but ``"model"``) in sorted order, keys
    absent from ``inputs`` skipped; ``"(fixed)"`` when nothing is left."""
    keys = sorted(k for k in inputs if k != "model") if axes is None else sorted(axes)
    return ", ".join(f"{k}={_text(inputs[k])}" for k in keys if k in inputs) or "(fixed)"


def natural_key(text: str) -> list[Any]:
    """Sort key of a label: digit runs compared as numbers ("8x8" before "16x16")."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", text)]


def check_rows(rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    """``rows`` validated (module docstring) and sorted by id (the same dicts, not copies).
    ``ValueError`` naming the row and the bad value: not a mapping, a missing or non-string id,
    inputs without a string ``"model"``, the reserved model :data:`MIX`, a status not in
    ``("done", "failed")``, a done row without an outputs mapping, a duplicate id or point."""
    if isinstance(rows, str | bytes | Mapping):
        raise ValueError(f"rows must be a list of row dicts, got {type(rows).__name__}")
    rows = list(rows)
    seen: dict[str, str] = {}
    ids: set[str] = set()
    for n, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise ValueError(f"row {n}: {row!r} is not a mapping")
        rid = row.get("id")
        if not isinstance(rid, str) or not rid:
            raise ValueError(f"row {n}: id {rid!r} is not a non-empty string")
        if rid in ids:
            raise ValueError(f"row {rid!r}: duplicate id")
        ids.add(rid)
        inputs = row.get("inputs")
        if not isinstance(inputs, Mapping) or not isinstance(inputs.get("model"), str) \
                or not inputs["model"]:
            raise ValueError(f"row {rid!r}: inputs {inputs!r} lack a non-empty string 'model'")
        if inputs["model"] == MIX:
            raise ValueError(f"row {rid!r}: model name {MIX!r} is reserved for the mix")
        if row.get("status") not in STATUSES:
            raise ValueError(f"row {rid!r}: status {row.get('status')!r} not in {STATUSES}")
        if row["status"] == "done" and not isinstance(row.get("outputs"), Mapping):
            raise ValueError(f"row {rid!r}: done but outputs {row.get('outputs')!r} "
                             "is not a mapping")
        point = inputs["model"] + "\0" + arch_key(inputs)
        if point in seen:
            raise ValueError(f"rows {seen[point]!r} and {rid!r} are the same point "
                             f"(model {inputs['model']!r}, {arch_label(inputs)})")
        seen[point] = rid
    return sorted(rows, key=lambda r: r["id"])  # type: ignore[arg-type, return-value]


def metric(row: Mapping[str, Any], name: str) -> float:
    """Output ``name`` of done ``row`` as a float; ``ValueError`` naming the row if missing,
    None, not a number, NaN or infinite."""
    out = row["outputs"]
    if out.get(name) is None:
        raise ValueError(f"row {row['id']!r}: outputs have no {name!r}")
    return _finite(out[name], f"row {row['id']!r}: outputs[{name!r}]")


def _raw(row: Mapping[str, Any], name: str) -> Any:
    """Output ``name`` of ``row`` as stored (an int stays an int), validated by :func:`metric`."""
    metric(row, name)
    return row["outputs"][name]


def area_metric(rows: Iterable[Mapping[str, Any]]) -> str:
    """``"area"`` when every done row has a non-None area, else ``"pes"`` (the proxy)."""
    done = [r for r in rows if r.get("status") == "done"]
    return "area" if all((r.get("outputs") or {}).get("area") is not None for r in done) \
        else "pes"


def varying_axes(rows: Iterable[Mapping[str, Any]], exclude: Iterable[str] = ("model",)
                 ) -> list[str]:
    """Sorted input keys (but ``exclude``) that take more than one value over ``rows``
    (a key missing from some rows counts as a value)."""
    rows, skip = list(rows), set(exclude)
    keys = sorted({k for r in rows for k in r["inputs"]} - skip)
    return [k for k in keys if len({_text(r["inputs"].get(k, "\0missing")) for r in rows}) > 1]


def _sum_outputs(members: Sequence[Row], label: str) -> dict[str, Any]:
    """The mix outputs of one architecture's ``members`` (one done row per model)."""
    outs: dict[str, Any] = {}
    for key in ("cycles", "energy_pj"):
        if all(m["outputs"].get(key) is not None for m in members):
            outs[key] = sum(_raw(m, key) for m in members)      # ints stay ints
    for key in ("pes", "area"):
        vals = sorted({_text(m["outputs"].get(key)) for m in members})
        if len(vals) > 1:
            raise ValueError(f"architecture {label}: {key} differs between models: "
                             + ", ".join(vals))
        outs[key] = members[0]["outputs"].get(key)
    cycles = outs.get("cycles")
    if cycles and all(m["outputs"].get("utilization") is not None for m in members):
        outs["utilization"] = sum(metric(m, "utilization") * metric(m, "cycles")
                                  for m in members) / cycles
    flows: dict[str, dict[str, int]] = {}
    for m in members:
        for cls, counts in _dataflows(m).items():
            for name, count in counts.items():
                flows.setdefault(cls, {})[name] = flows.get(cls, {}).get(name, 0) + count
    outs["dataflows"] = {c: dict(sorted(d.items())) for c, d in sorted(flows.items())}
    return outs


def mix_rows(rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    """One done row of model :data:`MIX` per architecture on which every model of ``rows``
    is done (aggregation in the module docstring), sorted by id; id ``"mix:"`` + the members'
    ids joined by ``"+"`` in model order, inputs the architecture's plus ``"model": "mix"``."""
    rows = check_rows(rows)
    models = sorted({r["inputs"]["model"] for r in rows})
    by_arch: dict[str, dict[str, Row]] = {}
    for r in rows:
        if r["status"] == "done":
            by_arch.setdefault(arch_key(r["inputs"]), {})[r["inputs"]["model"]] = r
    out = []
    for members in by_arch.values():
        if sorted(members) != models:
            continue
        ordered = [members[m] for m in models]
        inputs = {k: v for k, v in ordered[0]["inputs"].items() if k != "model"}
        out.append({"id": "mix:" + "+".join(m["id"] for m in ordered),
                    "inputs": {**inputs, "model": MIX}, "status": "done",
                    "outputs": _sum_outputs(ordered, arch_label(inputs)), "error": None,
                    "seconds": None})
    return sorted(out, key=lambda r: r["id"])


def _resolve(name: str, rows: Sequence[Row]) -> str:
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; known: {', '.join(METRICS)}")
    return area_metric(rows) if name == "area" else name


def fronts(rows: Iterable[Mapping[str, Any]], x: str = "area", y: str = "cycles"
           ) -> dict[str, list[Row]]:
    """The Pareto front of (``x``, ``y``) (both minimized, :data:`METRICS`; ``"area"`` as
    :func:`area_metric` resolves it) over the done rows of each model, in model order, then
    over :func:`mix_rows` under the key :data:`MIX` (always present, maybe empty). Each front
    is a list of rows by increasing x (:func:`pareto_front`). ``ValueError`` for an unknown
    metric or a row whose metric is missing or not finite."""
    rows = check_rows(rows)
    xk, yk = _resolve(x, rows), _resolve(y, rows)
    groups = {m: [r for r in rows if r["inputs"]["model"] == m and r["status"] == "done"]
              for m in sorted({r["inputs"]["model"] for r in rows})}
    groups[MIX] = mix_rows(rows)
    result = {}
    for name, members in groups.items():
        pts = [(metric(r, xk), metric(r, yk)) for r in members]
        result[name] = [members[i] for i in pareto_front(pts)]
    return result


def _dataflows(row: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """``row``'s ``outputs["dataflows"]`` validated ({} when absent or None)."""
    raw = (row.get("outputs") or {}).get("dataflows")
    if raw is None:
        return {}
    where = f"row {row.get('id')!r}: dataflows"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where} {raw!r} is not a mapping")
    out: dict[str, dict[str, int]] = {}
    for cls, counts in raw.items():
        if not isinstance(counts, Mapping):
            raise ValueError(f"{where}[{cls!r}] = {counts!r} is not a mapping")
        for name, n in counts.items():
            if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
                raise ValueError(f"{where}[{cls!r}][{name!r}] = {n!r} is not a count >= 0")
        out[str(cls)] = {str(k): int(v) for k, v in counts.items()}
    return out


class DataflowChoices(NamedTuple):
    """The dataflows along a front (:func:`dataflow_choices`)."""

    classes: list[str]
    """Operator classes seen on the front, sorted."""
    chosen: list[dict[str, str]]
    """Per front row, in order: op class -> the dataflow given most of its operators there
    (ties: the first name); classes with no operator at that point are absent."""
    counts: dict[str, dict[str, int]]
    """Op class -> dataflow -> operators, summed over the front's rows (sorted keys)."""


def dataflow_choices(front_rows: Sequence[Mapping[str, Any]]) -> DataflowChoices:
    """The dataflow chosen per operator class at each row of a front, and the counts over the
    whole front (:class:`DataflowChoices`). A row without ``dataflows`` contributes nothing;
    ``ValueError`` naming the row if they are not {class: {dataflow: count >= 0}}."""
    chosen: list[dict[str, str]] = []
    total: dict[str, dict[str, int]] = {}
    for row in front_rows:
        here = {}
        for cls, counts in _dataflows(row).items():
            used = {k: n for k, n in counts.items() if n > 0}
            if used:
                here[cls] = min(used.items(), key=lambda kv: (-kv[1], kv[0]))[0]
                for k, n in used.items():
                    total.setdefault(cls, {})[k] = total.get(cls, {}).get(k, 0) + n
        chosen.append(dict(sorted(here.items())))
    counts = {c: dict(sorted(d.items())) for c, d in sorted(total.items())}
    return DataflowChoices(sorted(counts), chosen, counts)


def bandwidth_sensitivity(rows: Iterable[Mapping[str, Any]]
                          ) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """Latency against DRAM bandwidth: model (then :data:`MIX`) -> architecture without
    :data:`BANDWIDTH_AXIS` (:func:`arch_label` over the other varying axes) -> [(bandwidth,
    cycles)] by increasing bandwidth, over done rows. Only series of at least two bandwidths;
    {} when the axis takes fewer than two values. ``ValueError`` naming the row for a
    bandwidth that is not a finite number."""
    rows = check_rows(rows)
    values = {_finite(r["inputs"][BANDWIDTH_AXIS], f"row {r['id']!r}: {BANDWIDTH_AXIS}")
              for r in rows if BANDWIDTH_AXIS in r["inputs"]}
    if len(values) < 2:
        return {}
    axes = varying_axes(rows, exclude=("model", BANDWIDTH_AXIS))
    groups = {m: [r for r in rows if r["inputs"]["model"] == m and r["status"] == "done"]
              for m in sorted({r["inputs"]["model"] for r in rows})}
    groups[MIX] = mix_rows(rows)
    out: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name, members in groups.items():
        series: dict[str, list[tuple[float, float]]] = {}
        for r in members:
            if BANDWIDTH_AXIS in r["inputs"]:
                series.setdefault(arch_label(r["inputs"], axes), []).append(
                    (float(r["inputs"][BANDWIDTH_AXIS]), _raw(r, "cycles")))
        kept = {k: sorted(v) for k, v in sorted(series.items(), key=lambda kv: natural_key(kv[0]))
                if len(v) >= 2}
        if kept:
            out[name] = kept
    return out
