"""Every tiny model's torch twin end to end (:func:`flows.e2e.run_e2e`): its linears as W8A8
GEMMs on the generated accelerator's RTL (Verilator, fast engine) and the reference machine,
the rest in torch float32; against golden (bit-exact) and float (the W8A8 bound per linear,
the output error reported). One JSON line per model and architecture, wall time included.

Run: ``.venv/bin/python benchmarks/e2e.py [--engine fast|ref] [--model NAME ...]``.
"""

from __future__ import annotations

import argparse
import json
import time

from flows.e2e import run_e2e
from hw.front.arch import load_arch
from mapping.torch_models import TORCH_TWINS

ARCHS = ("examples/arch/lego_fused.yaml", "examples/arch/gemmini_like.yaml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=("fast", "ref"), default="fast")
    ap.add_argument("--model", action="append", choices=list(TORCH_TWINS),
                    help="a twin (repeatable; default: all)")
    args = ap.parse_args()
    for path in ARCHS:
        arch = load_arch(path)
        for name in args.model or TORCH_TWINS:
            t0 = time.perf_counter()
            run = run_e2e(name, arch, engine=args.engine)
            print(json.dumps({**run.report(), "wall_s": round(time.perf_counter() - t0, 1)}),
                  flush=True)


if __name__ == "__main__":
    main()
