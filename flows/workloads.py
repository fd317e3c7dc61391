"""``lego run ARCH --workload ...``: a whole workload (an SVDQuant linear layer with its
low-rank branch, a linear-attention head, a DuoAttention KV head over a prompt and decode
steps) as accelerator programs on seeded random inputs, checked against golden's fixed-point
model.

The generated RTL does not execute the workload units' commands yet, so these run on the
instruction set's reference machine (``--engine ref``); ``cycles`` and ``model_cycles`` are
``null`` until the units are in the accelerator and its cycle model. The JSON line has the GEMM
runs' fields otherwise (MACs, DRAM bytes, instructions; ``unit_rows``: rows through each unit).

Layer: flows, the command line (imports mapping, hw, sim, sw, golden).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from golden.attention_cache_fixed import FullCacheFixed, StreamingCacheFixed
from golden.attention_fixed import logit_multiplier
from golden.linear_attention_chain import linear_attention_chain_int
from golden.svdquant_fixed import SVDQuantFixedSpec, quantize_branch, svdquant_fixed_int
from golden.svdquant_ops import quantize_int4
from hw.front.arch import ArchSpec
from hw.front.kernel_attention import run_linear_attention
from hw.front.kernel_duo import DuoHead, attention_config
from hw.front.kernel_svdquant import run_svdquant_linear
from hw.front.spec_model import SpecError

__all__ = ["WORKLOADS", "WorkloadRun", "run_workload"]

#: workload -> (the ``--shape`` fields, their defaults)
WORKLOADS: dict[str, tuple[tuple[str, ...], tuple[int, ...]]] = {
    "svdquant": (("M", "K", "N", "R"), (16, 256, 64, 32)),
    "linear-attention": (("N", "D", "DV"), (256, 32, 32)),
    "duo-attention": (("G", "T", "D"), (4, 96, 64)),
}
_UNITS = {"svdquant": ("requant", "dequant"),
          "linear-attention": ("requant", "normalizer"),
          "duo-attention": ("requant", "softmax", "normalizer", "kv_cache")}
_CODE_SCALE = 1 / 64          # the float value of one q / k code (sets the logit multiplier)


@dataclass(frozen=True)
class WorkloadRun:
    """What ran and what it moved; :meth:`report` is the JSON line."""

    layer: str
    arch: str
    bit_exact: bool
    instructions: int
    counts: dict[str, int]
    unit_rows: dict[str, int]

    def report(self) -> dict:
        c = self.counts
        units = dict(sorted(self.unit_rows.items()))
        return {"layer": self.layer, "arch": self.arch, "dataflow": None, "engine": "ref",
                "bit_exact": self.bit_exact, "cycles": None, "model_cycles": None,
                "roofline_cycles": None, "utilization": None, "macs": c.get("macs", 0),
                "dram_bytes": c.get("dram_read_bytes", 0) + c.get("dram_written_bytes", 0),
                "instructions": self.instructions, "unit_rows": units, "cycles_per_s": None}


def _shape(workload: str, shape: tuple[int, ...] | None) -> tuple[int, ...]:
    names, default = WORKLOADS[workload]
    shape = default if shape is None else tuple(shape)
    if len(shape) != len(names) or min(shape) < 1:
        raise ValueError(f"--shape for {workload} is {','.join(names)} (positive ints), got "
                         f"{','.join(map(str, shape))}")
    return shape


def _linear_attention(arch: ArchSpec, shape: tuple[int, ...], rng) -> WorkloadRun:
    n, d, dv = shape
    q, k, v = (rng.integers(-128, 128, s) for s in ((n, d), (n, d), (n, dv)))
    run = run_linear_attention(arch, q, k, v)
    nrm = arch.units.normalizer
    want = linear_attention_chain_int(q, k, v, nrm.out_frac_bits, nrm.den_bits,
                                      nrm.recip_frac_bits).out
    return WorkloadRun(f"linear-attention {n}x{d}x{dv}", arch.name,
                       bool(np.array_equal(run.output, want)), len(run.program),
                       dict(run.machine.counts), dict(run.machine.unit_rows))


def _svdquant(arch: ArchSpec, shape: tuple[int, ...], rng) -> WorkloadRun:
    """A layer of random float activations and weights (std 1 and 0.1) and a rank-R branch,
    quantized as SVDQuant does (int4 groups, the int8 branch), then run."""
    m, k, n, r = shape
    group = arch.units.dequant.group
    x = rng.standard_normal((m, k)).astype(np.float32)
    w, down = ((rng.standard_normal(s) * 0.1).astype(np.float32) for s in ((n, k), (r, k)))
    up = (rng.standard_normal((n, r)) * 0.1).astype(np.float32)
    qx, sx = quantize_int4(x, group)
    qw, sw = quantize_int4(w, group)
    b = quantize_branch(x, down, up, 8)
    ops = (qx, sx, qw, sw, b.xl, b.sxl, b.l1q, b.l2q, b.sl2)
    run = run_svdquant_linear(arch, *ops)
    spec = SVDQuantFixedSpec(group_size=group, branch_bits=8,
                             dequant=arch.units.dequant.golden_spec())
    want = np.asarray(svdquant_fixed_int(*ops, spec).y, np.float32)
    exact = bool(np.array_equal(run.output.view(np.int32), want.view(np.int32)))
    return WorkloadRun(f"svdquant {m}x{k}x{n} rank {r}", arch.name, exact, len(run.program),
                       dict(run.machine.counts), dict(run.machine.unit_rows))


def _duo_attention(arch: ArchSpec, shape: tuple[int, ...], rng, window, chunk: int,
                   decode: int) -> WorkloadRun:
    g, t, d = shape
    if not 0 <= decode < t:
        raise ValueError(f"--decode {decode} must leave a prompt: 0 <= decode < T={t}")
    if window is not None and (len(window) != 2 or window[1] < 1 or window[0] < 0):
        raise ValueError(f"--window is SINK,RECENT with RECENT >= 1, got {window}")
    q, k, v = rng.integers(-128, 128, (g, t, d)), *(rng.integers(-128, 128, (t, d))
                                                  for _ in range(2))
    cfg = attention_config(arch)
    fits = DuoHead.largest_chunk(arch, g, t, d, d, window, limit=chunk)
    if fits < 1:
        raise SpecError(f"a {g}x{t}x{d} head does not fit {arch.name!r}'s memories with any "
                        "chunk")
    chunk = fits
    mult, shift = logit_multiplier(_CODE_SCALE, _CODE_SCALE, d, cfg)
    head = DuoHead(arch, q, k, v, mult, shift, *(window or (None, None)),
                   max_chunk=min(chunk, t))
    ref = (StreamingCacheFixed(d, *window, mult, shift, cfg) if window
           else FullCacheFixed(d, mult, shift, cfg))
    steps = [min(chunk, t - decode - s) for s in range(0, t - decode, chunk)] + [1] * decode
    exact, instructions, start = True, 0, 0
    for c in steps:
        got = head.step(c)
        instructions += len(head.last_program)
        exact &= bool(np.array_equal(got, ref.step(q[:, start:start + c], k[start:start + c],
                                                   v[start:start + c])))
        start += c
    kind = f"streaming {window[0]}+{window[1]}" if window else "retrieval"
    return WorkloadRun(f"duo-attention {kind} {g}x{t}x{d} ({t - decode} prefill in chunks of "
                       f"{chunk}, {decode} decode)", arch.name, exact, instructions,
                       dict(head.machine.counts), dict(head.machine.unit_rows))


def run_workload(arch: ArchSpec, workload: str, shape: tuple[int, ...] | None = None, *,
                 seed: int = 0, window: tuple[int, ...] | None = None, chunk: int = 32,
                 decode: int = 4) -> WorkloadRun:
    """Run ``workload`` (:data:`WORKLOADS`) at ``shape`` on ``arch``'s reference machine and
    check it against golden; ``window`` (sink, recent) makes a DuoAttention head streaming;
    its prefill chunk is ``chunk`` or the largest smaller one that fits the memories."""
    if workload not in WORKLOADS:
        raise ValueError(f"unknown workload {workload!r} (workloads: {', '.join(WORKLOADS)})")
    if chunk < 1:
        raise ValueError(f"--chunk must be >= 1, got {chunk}")
    missing = [u for u in _UNITS[workload] if getattr(arch.units, u) is None]
    if missing:
        raise SpecError(f"architecture {arch.name!r} has no {', '.join(missing)} unit(s), which "
                        f"{workload} needs (units: {', '.join(arch.units.present()) or 'none'})")
    rng = np.random.default_rng(seed)
    shape = _shape(workload, shape)
    if workload == "svdquant":
        return _svdquant(arch, shape, rng)
    if workload == "linear-attention":
        return _linear_attention(arch, shape, rng)
    return _duo_attention(arch, shape, rng, window, chunk, decode)
