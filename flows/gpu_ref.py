"""``lego gpu-ref``: run the sw/ kernels against golden, then a paper-scale roofline.

Each workload runs its Triton kernel on a small seeded problem (``--shape``), compares with
the golden reference (max abs / relative error) and, on a GPU, times it against the plain
torch path. Without a GPU it says so (the kernels ran in Triton's interpreter) and prints the
roofline estimate of the paper-scale shapes on an H100 and a laptop RTX 4090.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import torch

__all__ = ["WORKLOADS", "run_gpu_ref"]

#: workload -> (meaning of --shape, default shape)
WORKLOADS: dict[str, tuple[str, tuple[int, ...]]] = {
    "svdquant": ("tokens,N,K (K a multiple of 64)", (64, 128, 256)),
    "linear-attention": ("batch,heads,tokens,head_dim", (1, 2, 200, 32)),
    "duo-attention": ("batch,q_heads,kv_heads,tokens,head_dim", (1, 4, 2, 96, 32)),
    "coat": ("elements", (4096,)),
}


def _errors(got: torch.Tensor, ref: torch.Tensor) -> dict:
    got, ref = got.double().cpu(), ref.double().cpu()
    err = (got - ref).abs()
    scale = ref.abs().max().clamp_min(1e-30)
    return {"max_abs_err": float(err.max()), "max_rel_err": float(err.max() / scale)}


def _svdquant(shape, seed, backend):
    from golden.svdquant import quantize_linear
    from sw.svdquant import w4a4_linear

    m, n, k = shape
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    calib = torch.randn(4 * m, k, generator=g)
    calib[:, :4] *= 20                                  # outlier channels
    layer = quantize_linear(w, calib, rank=32)
    x = torch.randn(m, k, generator=g)
    x[:, :4] *= 20
    ref = layer(x)                                      # a tensor in, a tensor out
    return (lambda: w4a4_linear(x, layer, backend=backend)), ref


def _linear_attention(shape, seed, backend):
    from golden.linear_attention import linear_attention as golden_la
    from sw.linear_attention import linear_attention

    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(*shape, generator=g) for _ in range(3))
    return (lambda: linear_attention(q, k, v, backend=backend)), golden_la(q, k, v)


def _duo_attention(shape, seed, backend):
    from golden.duo_attention import duo_attention as golden_duo
    from sw.duo_attention import duo_attention

    b, hq, hkv, t, d = shape
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, hq, t, d, generator=g)
    k, v = (torch.randn(b, hkv, t, d, generator=g) for _ in range(2))
    retrieval = torch.tensor([i % 2 == 0 for i in range(hkv)])
    sink, recent = 4, 16
    ref = golden_duo(q, k, v, retrieval, sink, recent)
    return (lambda: duo_attention(q, k, v, retrieval, sink, recent, backend=backend)), ref


def _coat(shape, seed, backend):
    from golden.coat import expand_dequantize as g_deq
    from golden.coat import expand_quantize as g_q
    from sw.coat import expand_dequantize, expand_quantize

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape[0], generator=g) * torch.logspace(-3, 0, shape[0])
    ref = torch.from_numpy(g_deq(g_q(x)))               # golden's dataclass is numpy
    return (lambda: expand_dequantize(expand_quantize(x, backend=backend), backend=backend)), ref


_RUNNERS: dict[str, Callable] = {"svdquant": _svdquant, "linear-attention": _linear_attention,
                                 "duo-attention": _duo_attention, "coat": _coat}


def _roofline() -> list[dict]:
    from sw.roofline import (
        DEVICES,
        duo_decode_costs,
        linear_attention_costs,
        sequence_time,
        svdquant_costs,
    )

    rows = []
    cases = {
        "svdquant FLUX.1 3072x3072, 4096 tokens, rank 32 (fused)":
            svdquant_costs(4096, 3072, 3072),
        "svdquant same layer, low-rank branch unfused": svdquant_costs(4096, 3072, 3072,
                                                                       fused=False),
        "linear attention Sana-1.6B 1024^2 (1024 tokens, 70x32)":
            linear_attention_costs(1024, 70, 32),
        "Llama-3-8B decode at 128k, 50% retrieval heads": duo_decode_costs(131072),
        "Llama-3-8B decode at 128k, full attention": duo_decode_costs(131072, duo=False),
    }
    for label, costs in cases.items():
        row = {"case": label, "gbytes": sum(c.bytes for c in costs) / 1e9,
               "gops": sum(c.ops for c in costs) / 1e9}
        for key, dev in DEVICES.items():
            row[f"{key}_us"] = sequence_time(costs, dev) * 1e6
        rows.append(row)
    fused, unfused = rows[0], rows[1]
    fused["unfused_over_fused_traffic"] = unfused["gbytes"] / fused["gbytes"]
    return rows


def run_gpu_ref(workload: str, shape: tuple[int, ...] | None = None, seed: int = 0) -> dict:
    """Run one workload's kernel against golden; returns the figures (printed by the CLI)."""
    import sw

    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r} (choose from {', '.join(WORKLOADS)})")
    meaning, default = WORKLOADS[workload]
    shape = tuple(shape) if shape else default
    if len(shape) != len(default) or any(s < 1 for s in shape):
        raise ValueError(f"--shape for {workload} is {meaning}, got {','.join(map(str, shape))}")
    run, ref = _RUNNERS[workload](shape, seed, "triton")
    t0 = time.perf_counter()
    out = run()
    t_kernel = time.perf_counter() - t0
    result = {"workload": workload, "shape": list(shape),
              "device": "interpreter (no GPU)" if sw.INTERPRETED else torch.cuda.get_device_name(),
              **_errors(torch.as_tensor(out), ref)}
    if not sw.INTERPRETED:
        torch_run, _ = _RUNNERS[workload](shape, seed, "torch")
        t0 = time.perf_counter()
        torch_run()
        result["torch_s"] = time.perf_counter() - t0
        result["triton_s"] = t_kernel
    result["roofline"] = _roofline()
    return result


def format_report(result: dict) -> str:
    lines = [f"workload {result['workload']} shape {result['shape']} on {result['device']}: "
             f"max abs err {result['max_abs_err']:.3g}, max rel err {result['max_rel_err']:.3g}"]
    if "torch_s" in result:
        lines.append(f"time: triton {result['triton_s'] * 1e3:.2f} ms, torch "
                     f"{result['torch_s'] * 1e3:.2f} ms")
    else:
        lines.append("no GPU: the kernel ran in Triton's interpreter; roofline estimates of "
                     "the paper-scale shapes instead:")
    lines.append(f"  {'case':<58} {'GB':>8} {'GOPs':>10} {'H100 us':>10} {'4090L us':>10}")
    for row in result["roofline"]:
        lines.append(f"  {row['case']:<58} {row['gbytes']:8.3f} {row['gops']:10.1f} "
                     f"{row['H100_us']:10.1f} {row['RTX4090-laptop_us']:10.1f}")
    ratio = result["roofline"][0]["unfused_over_fused_traffic"]
    lines.append(f"  SVDQuant low-rank branch: unfused moves {ratio:.2f}x the DRAM bytes of fused")
    lines.append(json.dumps(result))
    return "\n".join(lines)
