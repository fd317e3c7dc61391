"""RTL verification throughput of a generated 16x16 int8 output-stationary GEMM array.

Side by side on the same design and operands: cocotb (the behaviour checker: Verilator with
``--public-flat-rw``, Python waits once for ``done``) and the fast path (a generated C++
Verilator main: -O3, no public symbols, reset-free, operands loaded into the on-chip banks,
no Python in the run). Then a long run on the fast path alone. Every run is compared
bit-exactly with golden. Goal: at least 1M simulated cycles/s on the fast path.
Last line: one JSON object. Run: ``.venv/bin/python benchmarks/rtl_throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import time

from utilization import spec_for  # a sibling script (benchmarks/ is on sys.path when run)

from sim.design import simulate_design


def _run(spec, engine: str) -> dict:
    t0 = time.perf_counter()
    run = simulate_design(spec, seed=1, engine=engine)
    if not run.bit_exact or run.cycles != run.expected_cycles:
        raise SystemExit(f"{engine}: RTL disagrees with golden")
    return {"cycles": run.cycles, "cycles_per_s": run.sim_cycles_per_s,
            "build_s": run.build_s, "build_cached": run.build_cached,
            "total_s": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=int, default=64, help="n of the n^3 GEMM run both ways")
    ap.add_argument("--long", type=int, default=256, help="n of the n^3 GEMM on the fast path")
    args = ap.parse_args()

    short = spec_for("output_stationary", args.short)
    both = {engine: _run(short, engine) for engine in ("cocotb", "fast")}
    long = _run(spec_for("output_stationary", args.long), "fast")
    for label, r in (("cocotb", both["cocotb"]), ("fast", both["fast"]), ("fast long", long)):
        print(f"{label:<10} {r['cycles']:>9} cycles  {r['cycles_per_s']:>13,.0f} cycles/s  "
              f"build {r['build_s']:5.1f} s{' (cached)' if r['build_cached'] else ''}  "
              f"total {r['total_s']:5.1f} s", flush=True)
    ratio = both["fast"]["cycles_per_s"] / both["cocotb"]["cycles_per_s"]
    print(f"fast / cocotb: {ratio:.1f}x on {args.short}^3; all runs bit-exact against golden")
    print(json.dumps({
        "array": "16x16", "short_n": args.short, "long_n": args.long,
        "cocotb_cycles_per_s": round(both["cocotb"]["cycles_per_s"]),
        "fast_cycles_per_s": round(both["fast"]["cycles_per_s"]),
        "fast_long_cycles_per_s": round(long["cycles_per_s"]),
        "fast_over_cocotb": round(ratio, 1), "long_cycles": long["cycles"],
        "cocotb_build_s": round(both["cocotb"]["build_s"], 1),
        "fast_build_s": round(both["fast"]["build_s"], 1),
    }))


if __name__ == "__main__":
    main()
