"""PE utilisation of a 256x256x256 int8 GEMM on a 16x16 array, per dataflow.

Utilisation = MACs / (PEs x cycles), with the cycles of the generated design (overlapped
tiles, prologue and drain included, and the accumulator read of stationary outputs). The
cycle model is the one every RTL test holds the simulated designs to; with ``--rtl`` each
design is also built and run in the fast Verilator harness on the full problem and checked
bit-exact against golden (a few minutes per design).
Last line: one JSON object. Run: ``.venv/bin/python benchmarks/utilization.py [--rtl]``.
"""

from __future__ import annotations

import argparse
import json
import time

from hw.front.plan import plan_array
from hw.front.spec import spec_from_dict
from hw.rtl.generate import accumulates_in_fu
from sim.design import simulate_design

N = 256
ARRAY = 16

#: name: (space, time, tile for an (array x array) array and an n^3 problem, outer loop order)
FLOWS = {
    "output_stationary": (["i", "j"], "i + j + k", lambda a, n: {"i": a, "j": a, "k": n}, "ijk"),
    "weight_stationary": (["k", "j"], "i + j + k", lambda a, n: {"i": n, "j": a, "k": a}, "jki"),
    "input_stationary": (["i", "k"], "i + j + k", lambda a, n: {"i": a, "j": n, "k": a}, "ikj"),
    "multicast": (["i", "j"], "k", lambda a, n: {"i": a, "j": a, "k": n}, "ijk"),
}


def spec_for(name: str, n: int = N, array: int = ARRAY):
    """The n^3 int8 GEMM on an (array x array) array with dataflow ``name``."""
    space, time_, tile_of, order = FLOWS[name]
    tile = tile_of(array, n)
    return spec_from_dict({
        "name": f"gemm_{name}",
        "op": {"dims": {"i": n, "j": n, "k": n}, "tensors": {
            "A": {"index": "i, k", "role": "input", "type": "int8"},
            "B": {"index": "k, j", "role": "input", "type": "int8"},
            "C": {"index": "i, j", "role": "accumulate", "type": "int32"}}},
        "array": [array, array],
        "dataflow": {"name": name, "space": space, "time": time_,
                     "tile": {d: min(t, n) for d, t in tile.items()},
                     "outer_order": list(order)},
    })


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rtl", action="store_true", help="also run every design in Verilator")
    args = ap.parse_args()
    figures = {}
    for name in FLOWS:
        spec = spec_for(name)
        plan = plan_array(spec)
        # the generated design's cycles: the plan's, + the accumulator read (GeneratedArray)
        cycles = plan.run_cycles + int(accumulates_in_fu([plan]))
        util = N ** 3 / (ARRAY * ARRAY * cycles)
        line = (f"{name:<18} {cycles:>7} cycles  period {plan.period:>4}  "
                f"tiles {plan.n_tiles:>4}  banks {len(plan.banks):>3}  utilization {util:.2%}")
        figures[f"util_{name}"] = round(util, 4)
        if args.rtl:
            t0 = time.perf_counter()
            run = simulate_design(spec, seed=0, engine="fast")
            ok = run.bit_exact and run.cycles == run.expected_cycles
            line += (f"  RTL: {'bit-exact' if run.bit_exact else 'MISMATCH'}, {run.cycles} "
                     f"cycles, {run.sim_cycles_per_s:,.0f} cycles/s "
                     f"({time.perf_counter() - t0:.0f} s with build)")
            figures[f"rtl_ok_{name}"] = ok
        print(line, flush=True)
    best = max(FLOWS, key=lambda n: figures[f"util_{n}"])
    print(json.dumps({**figures, "best_dataflow": best,
                      "best_utilization": figures[f"util_{best}"]}))


if __name__ == "__main__":
    main()
