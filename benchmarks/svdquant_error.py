"""Relative output error of naive W4A4, SmoothQuant W4A4 and SVDQuant on a synthetic outlier layer.

Run: ``.venv/bin/python benchmarks/svdquant_error.py`` (defaults N = K = 512, 256 calibration
and 256 held-out tokens, seed 0). Errors are ``||y - x W^T||_F / ||x W^T||_F`` on the held-out
tokens. Prints a table and a rank sweep, then one JSON line with every figure.
BLAS is pinned to one thread (before numpy loads) so the run is reproducible and quick on a
shared host.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from golden.svdquant import METHODS, quantize_linear, relative_error  # noqa: E402
from golden.svdquant_synth import outlier_layer  # noqa: E402

RANKS = (0, 4, 8, 16, 32, 64)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    layer = outlier_layer(args.n, args.k, args.tokens, seed=args.seed)
    x_test = layer.test_x.astype(np.float64)
    y_ref = x_test @ layer.weight.T.astype(np.float64)

    def evaluate(method: str, rank: int) -> tuple[float, float | None]:
        q = quantize_linear(layer.weight, layer.calib_x, method, rank=rank)
        return relative_error(q(layer.test_x), y_ref), q.alpha

    errors, alphas = {}, {}
    print(f"SVDQuant error, N={args.n} K={args.k} tokens={args.tokens} rank={args.rank} "
          f"seed={args.seed} outlier channels={layer.outlier_channels.tolist()}")
    print(f"{'method':<10} {'rel. error':>11} {'alpha':>7}")
    for m in METHODS:
        errors[m], alphas[m] = evaluate(m, args.rank)
        a = "-" if alphas[m] is None else f"{alphas[m]:.3f}"
        print(f"{m:<10} {errors[m]:>11.5f} {a:>7}")
    sweep = {}
    print(f"\n{'rank':>5} {'rel. error':>11} {'alpha':>7}   (svdquant)")
    for r in RANKS:
        if r > min(args.n, args.k):
            continue
        sweep[r], a = ((errors["svdquant"], alphas["svdquant"]) if r == args.rank
                       else evaluate("svdquant", r))
        print(f"{r:>5} {sweep[r]:>11.5f} {a:>7.3f}")
    result = {
        "benchmark": "svdquant_error",
        "shape": {"n": args.n, "k": args.k, "tokens": args.tokens, "group_size": 64},
        "seed": args.seed,
        "rank": args.rank,
        "errors": {m: round(v, 6) for m, v in errors.items()},
        "alpha": alphas,
        "rank_sweep": {str(r): round(v, 6) for r, v in sweep.items()},
        "seconds": round(time.perf_counter() - t0, 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
