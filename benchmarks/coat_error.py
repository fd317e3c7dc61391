"""COAT range expansion vs plain per-group E4M3 on optimizer-state-like data, and the
fixed-point linear-attention error on a Sana-like head (d = 32, N = 1024).

Run: ``.venv/bin/python benchmarks/coat_error.py [--n 1048576] [--seed 0]``. The last line of
output is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from golden.coat import (
    dequantize_per_group,
    expand_dequantize,
    expand_quantize,
    quantize_per_group,
    relative_error,
    synthetic_moments,
)
from golden.linear_attention import linear_attention
from golden.linear_attention_fixed import linear_attention_fixed

__all__ = ["coat_figures", "linear_attention_figures", "main"]


def _mean_rel(x: np.ndarray, x_hat: np.ndarray) -> float:
    nz = x != 0
    return float(np.mean(np.abs(x_hat[nz] - x[nz]) / np.abs(x[nz])))


def coat_figures(n: int, seed: int, group_size: int = 128) -> dict[str, float]:
    """Relative L2 and mean elementwise relative errors, plain vs expanded, both moments."""
    out: dict[str, float] = {}
    for moment, name in ((1, "m1"), (2, "m2")):
        x = synthetic_moments(n, moment, group_size, seed=seed + moment)
        e = expand_quantize(x, group_size)
        x_exp = expand_dequantize(e)
        x_plain = dequantize_per_group(quantize_per_group(x, group_size))
        out[f"{name}_plain_rel_l2"] = relative_error(x, x_plain)
        out[f"{name}_expanded_rel_l2"] = relative_error(x, x_exp)
        out[f"{name}_ratio"] = out[f"{name}_expanded_rel_l2"] / out[f"{name}_plain_rel_l2"]
        out[f"{name}_plain_mean_rel"] = _mean_rel(x, x_plain)
        out[f"{name}_expanded_mean_rel"] = _mean_rel(x, x_exp)
        out[f"{name}_k_median"] = float(np.median(e.k))
    return out


def linear_attention_figures(seed: int, heads: int = 4, n: int = 1024, d: int = 32):
    """Fixed-point (int8 in, defaults Fo=8, R=16, F=24) vs fp32 float on N(0,1) q, k, v."""
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((1, heads, n, d)).astype(np.float32) for _ in range(3))
    res = linear_attention_fixed(q, k, v)
    ref = linear_attention(q, k, v)
    err = np.abs(res.dequantize() - ref)
    return {
        "la_max_abs_err": float(err.max()),
        "la_mean_abs_err": float(err.mean()),
        "la_max_err_over_max_out": float(err.max() / np.abs(ref).max()),
        "la_max_err_v_lsb": float(err.max() / res.v_scale),
        "la_mean_err_v_lsb": float(err.mean() / res.v_scale),
    }


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1 << 20, help="elements per moment")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    figs = {"n": args.n, "seed": args.seed, **coat_figures(args.n, args.seed)}
    for name, label in (("m1", "first moment (~1e3 span)"), ("m2", "second moment (~1e1 span)")):
        print(
            f"{label}: plain E4M3 rel L2 {figs[f'{name}_plain_rel_l2']:.4e}, expanded "
            f"{figs[f'{name}_expanded_rel_l2']:.4e}, ratio {figs[f'{name}_ratio']:.3f} "
            f"(median k {figs[f'{name}_k_median']}); mean rel {figs[f'{name}_plain_mean_rel']:.4e}"
            f" -> {figs[f'{name}_expanded_mean_rel']:.4e}"
        )
    figs.update(linear_attention_figures(args.seed))
    print(
        f"linear attention fixed-point (d 32, N 1024, 4 heads): max |err| "
        f"{figs['la_max_abs_err']:.3e} ({figs['la_max_err_v_lsb']:.3f} v-LSB, "
        f"{figs['la_max_err_over_max_out']:.2%} of max|o|), mean {figs['la_mean_abs_err']:.3e}"
        f" ({figs['la_mean_err_v_lsb']:.4f} v-LSB)"
    )
    figs["seconds"] = round(time.perf_counter() - t0, 2)
    print(json.dumps(figs))
    return figs


if __name__ == "__main__":
    main()
