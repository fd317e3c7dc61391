"""Simulated cycles per second of the default MAC array in Verilator, two ways side by side.

* bulk: operands loaded into the on-chip buffers, then one ``await RisingEdge(done)``: the
  design runs with no Python in the loop;
* per_cycle: the same run, but the bench wakes on every clock edge and samples the outputs.

Also measures the Verilator build, cold (fresh cache) and cached. Last line: one JSON object.
Run: ``.venv/bin/python benchmarks/sim_throughput.py [--k 4096] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from golden.int_gemm import random_operands
from hw.emit import to_verilog
from hw.mac_array import MacArray, MacArraySpec
from sim.mac_array import TOP, simulate_gemm
from sim.runner import build


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, default=4096, help="reduction length (run cycles ~ k)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per mode; the best is kept")
    args = ap.parse_args()

    spec = MacArraySpec(rows=4, cols=4, depth=args.k)   # the default array, deeper buffers
    verilog = to_verilog(MacArray(spec), TOP)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        build(verilog, TOP, cache_root=Path(tmp))
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = build(verilog, TOP, cache_root=Path(tmp))
        cached = time.perf_counter() - t0
        assert again.cached

    a, b = random_operands(spec.rows, args.k, spec.cols, seed=0)
    figures: dict[str, float] = {}
    for mode in ("bulk", "per_cycle"):
        best = None
        for r in range(args.repeats):
            run = simulate_gemm(spec, a, b, mode=mode, seed=r)
            if not run.bit_exact or run.cycles != run.expected_cycles:
                raise SystemExit(f"{mode}: RTL disagrees with golden")
            if best is None or run.sim_cycles_per_s > best.sim_cycles_per_s:
                best = run
        figures[f"{mode}_cycles_per_s"] = round(best.sim_cycles_per_s)
        figures["run_cycles"] = best.cycles

    ratio = figures["bulk_cycles_per_s"] / figures["per_cycle_cycles_per_s"]
    print(f"design        4x4 int8 MAC array, K={args.k} ({figures['run_cycles']} cycles a run)")
    print(f"build         cold {cold:.1f} s, cached {cached * 1000:.1f} ms")
    print(f"bulk          {figures['bulk_cycles_per_s']:>12,} simulated cycles/s")
    print(f"per_cycle     {figures['per_cycle_cycles_per_s']:>12,} simulated cycles/s")
    print(f"ratio         {ratio:.1f}x  (bulk / per_cycle, best of {args.repeats})")
    print(json.dumps({**figures, "bulk_over_per_cycle": round(ratio, 2),
                      "build_cold_s": round(cold, 2), "build_cached_s": round(cached, 4)}))


if __name__ == "__main__":
    main()
