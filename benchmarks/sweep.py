"""Design-space sweeps (:mod:`flows.sweep_run`), mapper cost only, on this machine; one JSON
line:

* ``pool_points_per_s`` / ``ray_points_per_s``: a rate sweep (the tiny zoo models over arrays
  and scratchpads, both shipped architectures) run into fresh stores with the process pool
  and with a local Ray instance, the same worker count; ``ray_rows_equal_pool``: the two
  stores' rows equal (timing column aside);
* ``shipped_wall_s``: ``examples/sweeps/lego_vs_gemmini.yaml`` with the pool (its points,
  failures);
* ``best_mix``: the design on the mix's latency-vs-PEs front with the fewest cycles, and its
  ``speedup`` over the Gemmini-like point of the same sweep (``gemmini_like`` at its own 16x16
  array and 256 KiB scratchpad): the mix's cycles, baseline over best; and the fastest mix
  design with the baseline's PE count (``best_at_same_pes``, ``speedup_at_same_pes``);
* with ``--area``: the shipped sweep again with ``measure: [cost, area]`` into its own store
  (``area_wall_s``: the Yosys runs of its architecture families included unless cached),
  ``best_mix_area``: the same figures on the latency-vs-area front, ``same`` meaning at most
  the baseline's area, and ``area_delay``: the baseline's (cycles x mm^2) over the best
  design's.

Run: ``.venv/bin/python benchmarks/sweep.py [--workers N] [--skip-ray] [--skip-shipped]
[--area]``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from flows.sweep_pareto import fronts, mix_rows
from flows.sweep_run import run_sweep
from flows.sweep_spec import load_sweep
from flows.sweep_store import read_rows

SHIPPED = "examples/sweeps/lego_vs_gemmini.yaml"
RATE = """name: rate
models: [tiny-flux1-dev, tiny-sana-1.6b, tiny-llama3-8b-duo, tiny-vila-u]
base: [examples/arch/lego_fused.yaml, examples/arch/gemmini_like.yaml]
axes:
  array: [8x8, 16x16]
  scratchpad_kib: [64, 256, 1024]
"""
BASELINE = {"base": "examples/arch/gemmini_like.yaml", "array": "16x16", "scratchpad_kib": 256}


def _timed(spec_path: str, store: Path, backend: str, workers: int) -> tuple[dict, float]:
    t0 = time.perf_counter()
    summary = run_sweep(load_sweep(spec_path), store, backend=backend, workers=workers,
                        progress=None)
    return summary, time.perf_counter() - t0


def _untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def _best_mix(rows: list[dict], x: str = "pes") -> dict:
    """The mix front's fastest design and its speedup over the Gemmini-like point; the
    fastest design with the baseline's ``x`` (PEs: equal; area: at most)."""
    mix = mix_rows(rows)
    front = fronts(rows, x=x, y="cycles")["mix"]
    best = min(front, key=lambda r: r["outputs"]["cycles"])
    base = [r for r in mix if all(r["inputs"].get(k) == v for k, v in BASELINE.items())]
    axes = ("base", "array", "scratchpad_kib")
    out = {"design": {k: best["inputs"][k] for k in axes}, "cycles": best["outputs"]["cycles"],
           x: best["outputs"][x]}
    if base:
        ref = base[0]["outputs"]
        same = min((r for r in mix if (r["outputs"][x] == ref[x] if x == "pes"
                                       else r["outputs"][x] <= ref[x])),
                   key=lambda r: r["outputs"]["cycles"])
        out.update({"gemmini_like_cycles": ref["cycles"], f"gemmini_like_{x}": ref[x],
                    "speedup": round(ref["cycles"] / best["outputs"]["cycles"], 3),
                    f"best_at_same_{x}": {k: same["inputs"][k] for k in axes},
                    f"speedup_at_same_{x}": round(ref["cycles"] / same["outputs"]["cycles"], 3)})
        if x == "area":
            product = min(mix, key=lambda r: r["outputs"]["cycles"] * r["outputs"]["area"])
            out["best_area_delay"] = {k: product["inputs"][k] for k in axes}
            out["area_delay"] = round(ref["cycles"] * ref["area"] / (
                product["outputs"]["cycles"] * product["outputs"]["area"]), 3)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--skip-ray", action="store_true", help="no Ray run")
    ap.add_argument("--skip-shipped", action="store_true", help="no shipped-sweep run")
    ap.add_argument("--area", action="store_true", help="the shipped sweep with the area "
                    "measure too (Yosys per architecture family unless cached)")
    args = ap.parse_args()
    line: dict = {"workers": args.workers}
    with tempfile.TemporaryDirectory() as tmp:
        rate = Path(tmp) / "rate.yaml"
        rate.write_text(RATE)
        summary, wall = _timed(str(rate), Path(tmp) / "pool.db", "pool", args.workers)
        line.update(rate_points=summary["points"], rate_failed=summary["failed"],
                    pool_points_per_s=round(summary["computed"] / wall, 3))
        if not args.skip_ray:
            rsum, rwall = _timed(str(rate), Path(tmp) / "ray.db", "ray", args.workers)
            line["ray_points_per_s"] = round(rsum["computed"] / rwall, 3)
            line["ray_rows_equal_pool"] = (_untimed(read_rows(Path(tmp) / "ray.db"))
                                           == _untimed(read_rows(Path(tmp) / "pool.db")))
        if not args.skip_shipped:
            summary, wall = _timed(SHIPPED, Path(tmp) / "shipped.db", "pool", args.workers)
            line.update(shipped_points=summary["points"], shipped_failed=summary["failed"],
                        shipped_wall_s=round(wall, 1))
            line["best_mix"] = _best_mix(read_rows(Path(tmp) / "shipped.db"))
        if args.area:
            spec = replace(load_sweep(SHIPPED), measure=("cost", "area"))
            t0 = time.perf_counter()
            summary = run_sweep(spec, Path(tmp) / "area.db", workers=args.workers,
                                progress=None)
            line.update(area_points=summary["points"], area_failed=summary["failed"],
                        area_wall_s=round(time.perf_counter() - t0, 1))
            line["best_mix_area"] = _best_mix(read_rows(Path(tmp) / "area.db"), x="area")
    print(json.dumps(line))


if __name__ == "__main__":
    main()
