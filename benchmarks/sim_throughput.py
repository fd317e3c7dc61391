"""Simulated cycles per second of the default design (4x4 int8 output-stationary GEMM).

Three ways, side by side, on one long problem (K = 4096 by default, so one run is thousands
of cycles):

* cocotb bulk: operands loaded into the on-chip banks, then one ``await RisingEdge(done)``;
* cocotb per_cycle: the same run, with Python woken on every clock edge;
* fast: the generated C++ Verilator harness (no ``--public-flat-rw``, -O3, no Python).

Every run is checked bit-exact against golden. Also measures the cocotb Verilator build cold
(fresh cache) and cached. Last line: one JSON object.
Run: ``.venv/bin/python benchmarks/sim_throughput.py [--k 4096] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from flows.default_design import default_spec
from hw.rtl.emit import emit_design
from sim.design import simulate_design
from sim.runner import build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=4096, help="reduction length (cycles ~ 4k)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per way; the best is kept")
    args = ap.parse_args()

    spec = default_spec().with_extents({"k": args.k}).with_tile({"k": args.k})
    _, _, verilog = emit_design([spec])
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build(verilog, spec.name, cache_root=Path(tmp))
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        assert build(verilog, spec.name, cache_root=Path(tmp)).cached
        cached = time.perf_counter() - t0

    figures: dict[str, float] = {}
    ways = {"cocotb_bulk": ("cocotb", "bulk"), "cocotb_per_cycle": ("cocotb", "per_cycle"),
            "fast": ("fast", "bulk")}
    for label, (engine, mode) in ways.items():
        best = 0.0
        for r in range(args.repeats):
            run = simulate_design([spec], seed=r, engine=engine, bench_mode=mode)
            if not run.bit_exact or run.cycles != run.expected_cycles:
                raise SystemExit(f"{label}: RTL disagrees with golden")
            best = max(best, run.sim_cycles_per_s)
            figures["run_cycles"] = run.cycles
        figures[f"{label}_cycles_per_s"] = round(best)

    bulk, per, fast = (figures[f"{w}_cycles_per_s"] for w in ways)
    print(f"design        {spec.name}, 8x8x{args.k} GEMM, {figures['run_cycles']} cycles a run")
    print(f"build         cocotb cold {cold:.1f} s, cached {cached * 1000:.1f} ms")
    print(f"cocotb bulk       {bulk:>12,} simulated cycles/s")
    print(f"cocotb per_cycle  {per:>12,} simulated cycles/s")
    print(f"fast C++          {fast:>12,} simulated cycles/s")
    print(f"ratios        bulk/per_cycle {bulk / per:.1f}x, fast/bulk {fast / bulk:.1f}x "
          f"(best of {args.repeats})")
    print(json.dumps({**figures, "bulk_over_per_cycle": round(bulk / per, 2),
                      "fast_over_bulk": round(fast / bulk, 2),
                      "build_cold_s": round(cold, 2), "build_cached_s": round(cached, 4)}))


if __name__ == "__main__":
    main()
