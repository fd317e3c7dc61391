"""The workload units of an architecture (``units:`` of its spec) through the back end: per
unit its primitive graph (nodes, state bits), the reciprocals lowered to long division
(:func:`hw.ir.expand.expand_reciprocals`), the critical path in multiplier delays, the LP
pipelining at a stage budget with shared fan-out chains (latency, inserted register bits,
solve time) and the Yosys generic-synthesis cells and flip-flops of the pipelined datapath
(:class:`hw.rtl.unit_rtl.GraphUnit`). Yosys takes over ten minutes on one 16-lane unit here, so
it synthesizes every unit at 1 and 2 lanes and extrapolates linearly to the declared lanes
(lanes are copies; the shared part and the reduction trees are what the 1-lane figure and
the difference do not split exactly): ``cells_1``, ``cells_2``, ``cells_per_lane``,
``cells_est``.

Last line: one JSON object. Run: ``.venv/bin/python benchmarks/units.py [ARCH.yaml]
[--budget 2.0] [--lanes N] [--no-synth]``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from hw.check.area import synth_stats
from hw.front.arch import load_arch
from hw.ir.expand import expand_reciprocals
from hw.ir.pipeline import apply_pipeline, insert_pipeline
from hw.ir.units.from_arch import unit_graphs
from hw.rtl.emit import to_verilog
from hw.rtl.unit_rtl import GraphUnit


def with_lanes(arch, lanes: int | None):
    """``arch`` with every unit's lanes set to ``lanes`` (``None``: as declared)."""
    return arch if lanes is None else replace(arch, units=arch.units.with_lanes(lanes))


def _lanes(arch, name: str) -> int:
    """A unit's lanes (the KV address generator and the normalizer's per-row reciprocal have
    none: 1)."""
    if name == "normalizer.reciprocal":
        return 1
    return getattr(getattr(arch.units, name), "lanes", 1)


def _pipelined(graph, budget: float):
    lowered = expand_reciprocals(graph)
    result = insert_pipeline(lowered, budget, share_fanout=True)
    return lowered, result, apply_pipeline(lowered, result)


def _synth(arch, name: str, budget: float) -> dict:
    """Cells and flip-flops at 1 and 2 lanes, and the linear estimate at ``arch``'s lanes."""
    stats = []
    for lanes in (1, 2):
        graph = unit_graphs(with_lanes(arch, lanes))[name]
        if name in ("kv_cache", "normalizer.reciprocal") and lanes == 2:
            stats.append(stats[0])              # no lanes: one generator
            continue
        top = f"{name.replace('.', '_')}_unit"
        stats.append(synth_stats(to_verilog(GraphUnit(_pipelined(graph, budget)[2]), top), top,
                                 timeout_s=1800))
    per_lane = stats[1].cells - stats[0].cells
    lanes = _lanes(arch, name)
    return {"cells_1": stats[0].cells, "cells_2": stats[1].cells, "cells_per_lane": per_lane,
            "cells_est": stats[0].cells + (lanes - 1) * per_lane,
            "flip_flops_1": stats[0].flip_flops, "flip_flops_2": stats[1].flip_flops}


def measure(arch, budget: float, synth: bool) -> dict[str, dict]:
    """The figures of every unit of ``arch`` (see the module docstring)."""
    out = {}
    for name, graph in unit_graphs(arch).items():
        start = time.perf_counter()
        lowered, result, piped = _pipelined(graph, budget)
        row = {"nodes": len(graph), "lowered_nodes": len(lowered),
               "state_bits": graph.register_bits(),
               "critical_path": lowered.longest_path()[0], "latency": result.latency,
               "pipeline_bits": result.register_bits,
               "lp_s": round(time.perf_counter() - start, 3)}
        row["lanes"] = _lanes(arch, name)
        if synth:
            start = time.perf_counter()
            row |= _synth(arch, name, budget) | {
                "synth_s": round(time.perf_counter() - start, 1)}
        out[name] = row
        print(f"{name:11s} " + " ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch", nargs="?", default="examples/arch/lego_fused.yaml")
    ap.add_argument("--budget", type=float, default=2.0,
                    help="stage budget in multiplier delays (default 2.0)")
    ap.add_argument("--lanes", type=int, default=None, help="override every unit's lanes")
    ap.add_argument("--no-synth", action="store_true", help="skip Yosys")
    args = ap.parse_args()
    arch = with_lanes(load_arch(args.arch), args.lanes)
    units = measure(arch, args.budget, not args.no_synth)
    print(json.dumps({"arch": arch.name, "budget": args.budget, "units": units}))


if __name__ == "__main__":
    main()
