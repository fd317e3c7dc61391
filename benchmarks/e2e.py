"""Every tiny model's torch twin end to end (:func:`flows.e2e.run_e2e`): its linears as W8A8
GEMMs on the generated accelerator's RTL (Verilator, fast engine) and the reference machine,
the rest in torch float32; against golden (bit-exact) and float (the W8A8 bound per linear,
the output error reported); and the GPU run (:mod:`flows.e2e_gpu`: the same chain on the sw
Triton kernels, the interpreter without a GPU; ``max_err_gpu``, ``rel_err_gpu``,
``gpu_vs_accel`` in the line). One JSON line per model and architecture, wall time included
(``wall_s`` the whole run, ``gpu_wall_s`` the GPU run's share; ``null`` with ``--no-gpu``).
Then, on the architectures with the attention units, each DuoAttention decoder twin
*generating* (:func:`flows.e2e_generate.run_generate`: a ``--prompt``-token prompt prefilled
in chunks of ``--chunk``, ``--steps`` decode steps, half the KV heads retrieval, every KV
cache kept in the accelerator's memories and checked against golden's): one more JSON line
each (``"generate": true``).

Run: ``.venv/bin/python benchmarks/e2e.py [--engine fast|ref] [--model NAME ...] [--no-gpu]
[--steps N] [--prompt P] [--chunk C]``.
"""

from __future__ import annotations

import argparse
import json
import time

from flows.e2e import run_e2e
from flows.e2e_duo import has_attention_units
from flows.e2e_generate import run_generate
from hw.front.arch import load_arch
from mapping.torch_models import TORCH_TWINS

ARCHS = ("examples/arch/lego_fused.yaml", "examples/arch/gemmini_like.yaml")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", choices=("fast", "ref"), default="fast")
    ap.add_argument("--model", action="append", choices=list(TORCH_TWINS),
                    help="a twin (repeatable; default: all)")
    ap.add_argument("--no-gpu", action="store_true", help="skip the GPU run")
    ap.add_argument("--steps", type=int, default=8, help="decode steps a generation (0: none)")
    ap.add_argument("--prompt", type=int, default=24, help="prompt tokens a generation")
    ap.add_argument("--chunk", type=int, default=8, help="prefill chunk a generation")
    args = ap.parse_args()
    for path in ARCHS:
        arch = load_arch(path)
        for name in args.model or TORCH_TWINS:
            t0 = time.perf_counter()
            run = run_e2e(name, arch, engine=args.engine, gpu=not args.no_gpu)
            gpu_s = None if run.gpu_seconds is None else round(run.gpu_seconds, 1)
            print(json.dumps({**run.report(), "wall_s": round(time.perf_counter() - t0, 1),
                              "gpu_wall_s": gpu_s}), flush=True)
    for path in ARCHS:
        arch = load_arch(path)
        if not args.steps or not has_attention_units(arch):
            continue
        for name in args.model or TORCH_TWINS:
            if "duo" not in name:
                continue
            t0 = time.perf_counter()
            run = run_generate(name, arch, steps=args.steps, prompt=args.prompt,
                               chunk=args.chunk, engine=args.engine, gpu=not args.no_gpu)
            print(json.dumps({"generate": True, **run.report(),
                              "wall_s": round(time.perf_counter() - t0, 1)}), flush=True)


if __name__ == "__main__":
    main()
