"""The whole generated accelerator (:func:`hw.rtl.accel.accelerator_verilog`) in Yosys generic
synthesis with its memories kept as memories: gates and flip-flops per part, SRAM bits per RAM.

Flow: :func:`hw.check.accel_area.measure_parts` (the coarse pass, the split into parts,
``techmap``: ``parts``, gates before ``abc``); then *Flat*: the coarse design as ``synth``
ends it (``techmap; opt -fast; abc; opt -fast``): ``cells`` (RAMs left out), the figure
comparable with :mod:`hw.check.area`'s. The area model a sweep uses
(:mod:`hw.check.area_model`, :mod:`flows.sweep_area`) prices the gates before ``abc``.
``abc`` cannot run per part (a part without its
flip-flops is one huge ABC network; tens of minutes here) and takes hours on the declared 16x16,
16-lane design (one 11k-gate network of the 4x4, 1-lane variant: 7 minutes), so the flat run
gets ``--full-timeout`` there, and otherwise:

Model (``model`` in the JSON): ``abc`` keeps a fraction ``r`` of the gates, the same for every
part and size: ``cells ~ r * gates`` with ``r`` of the largest measured variant
(``dataclasses.replace`` of the architecture: an E x E array, every unit at L lanes; memories,
rows, bus and unit parameters as declared); cross-check: the smaller variant's ``r`` predicts
the larger one's cells. (How the parts scale with the array and lanes is
``benchmarks/area_model.py``'s.)

Progress lines, then one JSON line. Run: ``.venv/bin/python benchmarks/accel_area.py
[ARCH.yaml] [--variants 2x1,4x2] [--full-timeout 2400] [--quick]`` (``--quick``: the first
variant only). Measured on this machine kind: the declared lego_fused design's coarse pass
27 min and split 3 min (1.18M gates before ``abc``); ``abc`` does not finish on it (900 s)
nor on the 2x2, 1-lane variant (45 min): ``--variants ""`` measures the declared design's
gates per part alone and skips the model when no ``abc`` result exists.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path

from hw.check.accel_area import measure_parts, parse_stat, run_yosys
from hw.front.arch import load_arch

_FLAT = ("read_rtlil coarse.il; techmap; opt -fast; tee -q -o pre.txt stat; abc; opt -fast; "
         "tee -q -o post.txt stat")


def measure(arch, flat_timeout_s: float) -> dict:
    """Gates per part (:func:`hw.check.accel_area.measure_parts`), flat cells (``None``
    past ``flat_timeout_s``) and RAMs of ``arch``."""
    row: dict = {"edge": arch.array[0], "lanes": _lanes(arch)}
    with tempfile.TemporaryDirectory(prefix="lego-accel-area-") as tmp:
        parts = measure_parts(arch, 3600, tmp)
        top = parts.top
        row["memories"] = parts.memories
        row["parts"] = {k: {"gates": v.gates, "flip_flops": v.flip_flops}
                        for k, v in parts.parts.items()}
        row["gates"] = parts.gates
        row["flip_flops"] = sum(v.flip_flops for v in parts.parts.values())
        row["yosys_s"] = dict(parts.seconds)
        print(f"  {arch.array[0]}x{arch.array[0]} L={row['lanes']}: {row['yosys_s']} s, "
              f"{row['gates']} gates before abc", flush=True)
        try:
            flat_s, passes = run_yosys(_FLAT.format(top=top), tmp, flat_timeout_s)
        except subprocess.TimeoutExpired:
            row["flat"] = None
            row["yosys_s"]["flat"] = f"timed out after {flat_timeout_s:.0f}"
            return row
        pre = parse_stat((Path(tmp) / "pre.txt").read_text(), top)["top"]
        post = parse_stat((Path(tmp) / "post.txt").read_text(), top)["top"]
    row["flat"] = {"gates": pre.gates, "cells": post.gates, "flip_flops": post.flip_flops,
                   "r": round(post.gates / pre.gates, 4)}
    row["yosys_s"]["flat"] = flat_s
    row["yosys_passes"] = {"flat": passes}
    return row


def _lanes(arch) -> int | None:
    lanes = set(arch.units.lanes().values())
    return lanes.pop() if len(lanes) == 1 else None


def _variant(arch, edge: int, lanes: int):
    return replace(arch, array=(edge, edge), units=arch.units.with_lanes(lanes))


def _line(label: str, row: dict) -> str:
    flat = row["flat"] or {}
    return (f"{label}: {row['gates']} gates, {row['flip_flops']} flip-flops before abc; flat "
            f"{flat.get('cells', '-')} cells (r={flat.get('r', '-')}); RAM bits "
            f"{sum(m['bits'] for m in row['memories'].values())}; yosys_s {row['yosys_s']}\n  "
            + " ".join(f"{k}={v['gates']}" for k, v in row["parts"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("arch", nargs="?", default="examples/arch/lego_fused.yaml")
    ap.add_argument("--variants", default="2x1,4x2", help="EDGExLANES, smaller first")
    ap.add_argument("--quick", action="store_true", help="the first variant only")
    ap.add_argument("--full-timeout", type=float, default=2400,
                    help="seconds for the declared design's flat abc (default 2400)")
    ap.add_argument("--timeout", type=float, default=3600, help="a variant's flat abc")
    args = ap.parse_args()
    arch = load_arch(args.arch)
    points = [tuple(map(int, v.split("x"))) for v in args.variants.split(",") if v]
    runs = []
    for e, ln in points[:1] if args.quick else points:
        runs.append(measure(_variant(arch, e, ln), args.timeout))
        print(_line(f"variant {e}x{e} L={ln}", runs[-1]), flush=True)
    out: dict = {"arch": arch.name, "variants": runs}
    if not args.quick:
        full = measure(arch, args.full_timeout)
        print(_line(f"declared {arch.array[0]}x{arch.array[0]} L={_lanes(arch)}", full),
              flush=True)
        out["declared"] = full
        r = next((v["flat"]["r"] for v in reversed(runs) if v["flat"]), None)
        if r is None:
            r = full["flat"]["r"] if full["flat"] else None
        if r is None:
            print("no flat (abc) result: gates before abc only", flush=True)
            print(json.dumps(out))
            return
        model = {"assumption": "cells = r * gates, r (abc's kept fraction) that of the largest "
                 "measured variant, the same for every part", "r": r,
                 "cells_est": round(r * full["gates"]),
                 "parts_cells_est": {k: round(r * v["gates"]) for k, v in full["parts"].items()}}
        if len(runs) >= 2 and runs[-1]["flat"] and runs[-2]["flat"]:
            pred = runs[-2]["flat"]["r"] * runs[-1]["gates"]
            model["cross_check"] = {
                "predicts": f"{runs[-1]['edge']}x{runs[-1]['lanes']} from "
                            f"{runs[-2]['edge']}x{runs[-2]['lanes']}'s r",
                "rel_error": round(pred / runs[-1]["flat"]["cells"] - 1, 4)}
        if full["flat"]:
            model["rel_error_vs_declared"] = round(model["cells_est"] / full["flat"]["cells"]
                                                   - 1, 4)
        out["model"] = model
        print(f"estimate: {model['cells_est']} cells (r={r}); {json.dumps(model)}", flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
