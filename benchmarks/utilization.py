"""PE utilisation of a 256x256x256 int8 GEMM on a 16x16 array, per dataflow; the time to
cost a 4096^3 GEMM on 16x16 (what a mapper pays per candidate).

Utilisation = MACs / (PEs x cycles), with the cycles of the generated design (overlapped
tiles, prologue and drain included, and the accumulator read of stationary outputs) from
:func:`hw.cost.design_cost`, the cost model every RTL test holds the simulated designs to; with
``--rtl`` each design is also built and run in the fast Verilator harness on the full problem
and checked bit-exact against golden (a few minutes per design). Costing time: planning
(``plan_array``) and ``design_cost`` of the 4096^3 plan, best of 3, per dataflow (if the spec
layer rejects a problem that large, the largest power-of-two cube it accepts, and why).
Last line: one JSON object. Run: ``.venv/bin/python benchmarks/utilization.py [--rtl]``.
"""

from __future__ import annotations

import argparse
import json
import time

from hw.cost import design_cost
from hw.front.plan import plan_array
from hw.front.spec import SpecError, spec_from_dict
from sim.design import simulate_design

N = 256
ARRAY = 16
#: the problem whose costing time is measured (what a mapper costs per candidate)
COST_N = 4096

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


def costing_time(name: str, n: int = COST_N, array: int = ARRAY, repeats: int = 3
                 ) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of (plan_array, design_cost) for the n^3 GEMM."""
    spec = spec_for(name, n, array)
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan = plan_array(spec)
        t1 = time.perf_counter()
        design_cost([plan])
        t2 = time.perf_counter()
        best = min(best, (t1 - t0, t2 - t1), key=sum)
    return best


def cost_problem(n: int = COST_N) -> tuple[int, str | None]:
    """``n`` if an n^3 GEMM is a valid spec, else the largest power of two below that is,
    and the reason ``n`` is not."""
    reason = None
    while n > 1:
        try:
            spec_for("output_stationary", n)
            return n, reason
        except SpecError as exc:
            reason = reason or str(exc)
            n //= 2
    raise SystemExit(f"no GEMM spec is accepted: {reason}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rtl", action="store_true", help="also run every design in Verilator")
    args = ap.parse_args()
    figures: dict = {}
    cost_n, rejected = cost_problem()
    if rejected:
        print(f"costing: {COST_N}^3 rejected ({rejected}); timing {cost_n}^3", flush=True)
    for name in FLOWS:
        spec = spec_for(name)
        plan = plan_array(spec)
        cost = design_cost([plan]).mode(0)     # = GeneratedArray.run_cycles: plan + acc. read
        util = cost.utilization
        plan_s, cost_s = costing_time(name, cost_n)
        line = (f"{name:<18} {cost.cycles:>7} cycles  period {plan.period:>4}  "
                f"tiles {plan.n_tiles:>4}  banks {len(plan.banks):>3}  utilization {util:.2%}"
                f"  | cost {cost_n}^3: plan {plan_s * 1e3:.1f} ms + cost {cost_s * 1e3:.1f} ms")
        figures[f"util_{name}"] = round(util, 4)
        figures[f"cost_s_{name}"] = round(plan_s + cost_s, 4)         # plan + design_cost
        figures[f"cost_model_s_{name}"] = round(cost_s, 4)            # design_cost alone
        if args.rtl:
            t0 = time.perf_counter()
            run = simulate_design([spec], seed=0, engine="fast")
            ok = run.bit_exact and run.cycles == run.expected_cycles
            line += (f"  RTL: {'bit-exact' if run.bit_exact else 'MISMATCH'}, {run.cycles} "
                     f"cycles, {run.sim_cycles_per_s:,.0f} cycles/s "
                     f"({time.perf_counter() - t0:.0f} s with build)")
            figures[f"rtl_ok_{name}"] = ok
        print(line, flush=True)
    best = max(FLOWS, key=lambda n: figures[f"util_{n}"])
    slowest = max(figures[f"cost_s_{n}"] for n in FLOWS)
    print(json.dumps({**figures, "best_dataflow": best,
                      "best_utilization": figures[f"util_{best}"],
                      "cost_problem": f"{cost_n}^3 on {ARRAY}x{ARRAY}", "cost_s_max": slowest,
                      **({"cost_rejected": rejected} if rejected else {})}))


if __name__ == "__main__":
    main()
