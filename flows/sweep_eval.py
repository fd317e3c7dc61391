"""One point of a sweep: its architecture (:func:`arch_for`) and its measures
(:func:`evaluate`), in functions a process pool or Ray worker can run (top level, picklable
arguments, nothing shared but per-process caches).

**The architecture** is the base with the point's axes applied by ``dataclasses.replace``
(validated again on construction): the array, the element types, the dataflows named (in the
point's order), the scratchpad and accumulator capacities (the base's banks), the DRAM
bandwidth (the base's latency). The accelerator moves one scratchpad row a DRAM beat
(:func:`hw.front.accel_params.accel_params`), so the scratchpad row is ``dram_bytes_per_cycle``
(which must hold one array edge of operands: a sweep without that axis widens the beat to
it, :func:`flows.sweep_spec.edge_bytes`); an accumulator row is the base's, widened to one
edge of results if narrower, rounded up to whole beats (an 8x8 array keeps the base's rows,
so that the base's 16-lane units still divide them). Everything else (clock, padding, the
workload units and their lanes) is the base's: on lego_fused at 32x32 the 16-lane dequantizer
is narrower than an output tile, so FLUX's SVDQuant layers do not map there (and widening it
to 32 lanes overflows the ISA's 4-bit unit count field): those points fail. An axis value
the architecture checks reject (a 3x3 array under 64-element quantization groups, a beat
narrower than an array edge) raises ``SpecError``; one the mapper cannot run raises
``Unmappable``: the point fails, recorded with that message.

**The outputs** (:func:`evaluate`), JSON-able and deterministic (no wall times; those are the
store's ``seconds``)::

    {"cycles": int,                 # the mapper's total (every operator x its count)
     "latency_s": float,            # cycles / clock
     "energy_pj": float, "dram_bytes": int, "macs": int,
     "utilization": float,          # macs / (pes x cycles)
     "pes": int, "sram_bytes": int, # array size, scratchpad + accumulator capacity
     "area": None,                  # mm^2 with the area measure (flows.sweep_area, whose
                                    # other outputs join these), else None
     "cycles_by_kind": {kind: int},
     "dataflows": {kind: {dataflow: count}}}  # operators with MACs: their executions by
                                              # the chosen dataflow ("host" when on the host)

with the ``rtl`` measure also ``"rtl"`` (:mod:`flows.sweep_rtl`). ``unit_lanes`` (when not
None and not the base's) sets every laned unit's lanes.

Layer: flows.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from functools import lru_cache
from typing import Any

from golden.int_types import int_type
from hw.front.arch import ArchSpec, DramSpec, MemorySpec, arch_from_dict
from hw.front.yaml_fields import read_yaml

from .sweep_models import build_graph
from .sweep_spec import canonical_json

__all__ = ["arch_for", "evaluate", "run_point"]


@lru_cache(maxsize=16)
def _base_arch(data_json: str | None, path: str) -> ArchSpec:
    """The base architecture, from its YAML mapping (as canonical JSON) or else its file."""
    if data_json is not None:
        return arch_from_dict(json.loads(data_json))
    return read_yaml(path, arch_from_dict, "architecture")


def _acc_row_bytes(base: MemorySpec, edge: int, bits: int, beat: int) -> int:
    """The base's accumulator row, widened to one array edge of ``bits``-bit results if
    narrower, rounded up to whole DRAM beats."""
    row = max(base.row_bytes, -(-edge * bits // 8))
    return -(-row // beat) * beat


def arch_for(inputs: dict[str, Any], base: dict | None = None) -> ArchSpec:
    """The point's architecture: ``base`` (the base's parsed YAML mapping; None: read the
    file ``inputs["base"]``) with the axes of ``inputs`` applied (module docstring);
    ``SpecError`` if the result is not a valid architecture."""
    arch = _base_arch(None if base is None else canonical_json(base), inputs["base"])
    rows, cols = (int(x) for x in inputs["array"].split("x"))
    types = tuple(int_type(t) for t in inputs["types"].split(","))
    beat = inputs["dram_bytes_per_cycle"]
    sp, acc = arch.scratchpad, arch.accumulator
    lanes = inputs.get("unit_lanes")
    units = arch.units if lanes is None or set(arch.units.lanes().values()) == {lanes} \
        else arch.units.with_lanes(lanes)
    return replace(
        arch, array=(rows, cols), types=types, units=units,
        dataflows=tuple(arch.dataflow(n) for n in inputs["dataflows"].split("+")),
        scratchpad=MemorySpec(round(inputs["scratchpad_kib"] * 1024), sp.banks, beat),
        accumulator=MemorySpec(round(inputs["accumulator_kib"] * 1024), acc.banks,
                               _acc_row_bytes(acc, max(rows, cols), types[2].bits, beat)),
        dram=DramSpec(beat, arch.dram.latency_cycles))


@lru_cache(maxsize=32)
def _graph(text: str):
    """The graph of a point's ``model``, built once per process."""
    return build_graph(text)


def evaluate(inputs: dict[str, Any], base: dict | None = None) -> dict[str, Any]:
    """The point's measures (module docstring): its model mapped by
    :func:`mapping.mapper.map_model` on :func:`arch_for` under its objective. Raises what
    they raise (``SpecError``, ``Unmappable``, ``ValueError``)."""
    from mapping.mapper import map_model

    arch = arch_for(inputs, base)
    graph = _graph(inputs["model"])
    schedule = map_model(graph, arch=arch, objective=inputs.get("objective", "cycles"))
    totals = schedule.totals
    cycles = totals["cycles"]
    by_kind: dict[str, int] = {}
    flows: dict[str, dict[str, int]] = {}
    for e in schedule.entries:
        by_kind[e.kind] = by_kind.get(e.kind, 0) + e.cycles * e.count
        if e.macs:
            where = flows.setdefault(e.kind, {})
            key = e.dataflow or e.target
            where[key] = where.get(key, 0) + e.count
    out = {"cycles": cycles, "latency_s": cycles / (arch.clock_mhz * 1e6),
           "energy_pj": totals["energy_pj"], "dram_bytes": totals["dram_bytes"],
           "macs": totals["macs"],
           "utilization": totals["macs"] / (arch.pes * cycles) if cycles else 0.0,
           "pes": arch.pes,
           "sram_bytes": arch.scratchpad.capacity_bytes + arch.accumulator.capacity_bytes,
           "area": None, "cycles_by_kind": by_kind, "dataflows": flows}
    measure = inputs.get("measure", ["cost"])
    if "area" in measure:
        from .sweep_area import area_outputs

        out.update(area_outputs(arch))
    if "rtl" in measure:
        from .sweep_rtl import rtl_outputs

        out.update(rtl_outputs(arch, inputs["model"], **inputs["rtl"]))
    return out


def run_point(point_id: str, inputs: dict[str, Any], base: dict | None = None
              ) -> tuple[str, str, dict | None, str | None, float]:
    """What a worker runs: ``(id, status, outputs, error, seconds)``, status ``"done"`` with
    :func:`evaluate`'s outputs, or ``"failed"`` with the exception's class and message (any
    ``Exception``: a failing point never stops the sweep); ``seconds`` of wall time."""
    start = time.perf_counter()
    try:
        outputs = evaluate(inputs, base)
        # round trip: what the store keeps is exactly what a rerun would compute
        outputs = json.loads(canonical_json(outputs))
        return point_id, "done", outputs, None, time.perf_counter() - start
    except Exception as exc:            # recorded; the sweep goes on
        message = " ".join(str(exc).split()) or type(exc).__name__
        return (point_id, "failed", None, f"{type(exc).__name__}: {message}",
                time.perf_counter() - start)
