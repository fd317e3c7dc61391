"""The three workloads as accelerator programs on the fused architecture (every run
bit-exact against golden): MACs, DRAM bytes, instructions, rows through each unit and the
cycle model's cycles and utilization, with the RTL (Verilator, fast engine) measured at
reduced shapes next to the model. The SVDQuant low-rank branch's overhead in cycles (the
layer against the same layer at rank 0), MACs and DRAM bytes at reduced shapes and at
FLUX.1's 4096 x 3072 x 3072, rank 32 (its 4.3M-instruction program costed by the model, not
run), next to golden's closed form (every operand read once). A DuoAttention decode step of a
streaming head (sink 64 + recent 256, up to Llama-3-8B's 32k context) against a retrieval
head as the context grows (its cache in the scratchpad, and streamed from DRAM up to 32k):
its cycles (the model, the step's program alone), MACs and KV slots; a 4k-token prefill of
the streaming head (in the largest chunks that fit the memories) against a retrieval head's
4k-token chunk at the end of a 32k prompt (keys and values streamed from DRAM, in query tiles;
costed by the model, checked at a reduced size).

Last line: one JSON object. Run: ``.venv/bin/python benchmarks/workloads.py [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from flows.workloads import run_workload
from golden.attention_cache_fixed import FullCacheFixed, StreamingCacheFixed
from golden.attention_fixed import attention_head_int, logit_multiplier
from golden.svdquant_fixed import branch_overhead
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import load_arch
from hw.front.kernel_chain import blocks
from hw.front.kernel_duo import DuoHead, attention_config
from hw.front.kernel_duo_long import (
    LongAttention,
    default_tile,
    largest_block,
    long_attention_program,
    run_long_decode,
    run_long_prefill,
)
from hw.front.kernel_svdquant import svdquant_operands, svdquant_program
from hw.front.program_cost import program_cost

ARCH = "examples/arch/lego_fused.yaml"


def _layer_model(arch, m: int, k: int, n: int, r: int) -> dict:
    """One layer's program, costed without running it: model cycles, MACs, DRAM bytes."""
    program = svdquant_program(arch, svdquant_operands(arch, m, k, n, r))
    cost = program_cost(program, arch)
    cycles = accel_timing(program, accel_params(arch)).cycles
    return {"cycles": cycles, "macs": cost.macs, "dram_bytes": cost.dram_bytes,
            "instructions": len(program), "utilization": round(cost.macs / arch.pes / cycles, 4)}


def _branch_cost(arch, m: int, k: int, n: int, r: int) -> dict:
    """The layer at rank ``r`` against the same layer at rank 0 (the plain W4A4 layer)."""
    full, plain = _layer_model(arch, m, k, n, r), _layer_model(arch, m, k, n, 0)
    return {"shape": [m, k, n, r], **full, "cycles_without_branch": plain["cycles"],
            "dram_bytes_without_branch": plain["dram_bytes"],
            "branch_cycle_fraction": round(full["cycles"] / plain["cycles"] - 1, 4),
            "branch_mac_fraction": round(full["macs"] / plain["macs"] - 1, 4),
            "branch_byte_fraction": round(full["dram_bytes"] / plain["dram_bytes"] - 1, 4)}


def _svdquant(arch, shapes, flux_m: int) -> dict:
    """Layers run on the reference machine (bit-exact against golden), the branch's share of
    their cycles, MACs and DRAM bytes, and the same at FLUX.1's K = N = 3072, rank 32 with
    ``flux_m`` tokens (4096: the paper shape; costed, not run), next to golden's closed form
    (every operand read once: no re-reads of the weights)."""
    rows = []
    for m, k, n, r in shapes:
        run = run_workload(arch, "svdquant", (m, k, n, r))
        rows.append({**_branch_cost(arch, m, k, n, r), "bit_exact": run.bit_exact})
        print(f"svdquant {m}x{k}x{n} r{r}: {rows[-1]}", flush=True)
    started = time.perf_counter()
    flux = _branch_cost(arch, flux_m, 3072, 3072, 32)
    flux["model_seconds"] = round(time.perf_counter() - started, 1)
    print(f"svdquant FLUX.1 {flux_m}x3072x3072 r32: {flux}", flush=True)
    paper = branch_overhead(flux_m, 3072, 3072, 32, 64)
    return {"measured": rows, "flux": flux, "closed_form_read_once": {
        "mac_fraction": round(paper.mac_fraction, 4),
        "byte_fraction_own_x": round(paper.byte_fraction, 4),
        "byte_fraction_shared_x": round(paper.byte_fraction_shared_x, 4)}}


def _linear_attention(arch, tokens) -> list[dict]:
    rows = []
    for n in tokens:
        c = run_workload(arch, "linear-attention", (n, 32, 32)).report()
        rows.append({k: c[k] for k in ("layer", "bit_exact", "model_cycles", "utilization",
                                       "macs", "dram_bytes", "instructions", "unit_rows")})
        print(f"{c['layer']}: {rows[-1]}", flush=True)
    return rows


def _on_rtl(arch, runs) -> list[dict]:
    """Workloads run on the RTL (fast engine): measured cycles next to the model's."""
    rows = []
    for workload, shape, extra in runs:
        c = run_workload(arch, workload, shape, engine="fast", **extra).report()
        rows.append({k: c[k] for k in ("layer", "bit_exact", "cycles", "model_cycles",
                                       "utilization", "cycles_per_s")})
        print(f"rtl {c['layer']}: {rows[-1]}", flush=True)
    return rows


def _decode_step(arch, context: int, window, g: int, d: int) -> dict:
    """Prefill ``context`` tokens, then one decode step: its counts and the cache's slots."""
    rng = np.random.default_rng(context)
    t = context + 1
    q, k, v = rng.integers(-128, 128, (g, t, d)), rng.integers(-128, 128, (t, d)), \
        rng.integers(-128, 128, (t, d))
    cfg = attention_config(arch)
    mult, shift = logit_multiplier(1 / 64, 1 / 64, d, cfg)
    chunk = DuoHead.largest_chunk(arch, g, t, d, d, window, limit=64)
    head = DuoHead(arch, q, k, v, mult, shift, *(window or (None, None)), max_chunk=chunk)
    ref = (StreamingCacheFixed(d, *window, mult, shift, cfg) if window
           else FullCacheFixed(d, mult, shift, cfg))

    def step(c: int) -> None:
        at = head.length
        got = head.step(c)
        if not np.array_equal(got, ref.step(q[:, at:at + c], k[at:at + c], v[at:at + c])):
            raise AssertionError(f"decode benchmark: step at {at} differs from golden")

    while head.length < context:
        step(min(chunk, context - head.length))
    before = dict(head.machine.counts)
    step(1)
    after = head.machine.counts
    delta = {key: after[key] - before.get(key, 0) for key in after}
    slots = sum(window) if window else context
    cycles = accel_timing(head.last_program, accel_params(arch)).cycles
    return {"context": context, "cycles": cycles, "macs": delta.get("macs", 0),
            "dram_bytes": delta.get("dram_read_bytes", 0) + delta.get("dram_written_bytes", 0),
            "instructions": len(head.last_program), "kv_slots": min(slots, context),
            "kv_bytes": 2 * d * min(slots, context)}


def _prefill(arch, tokens: int, window, g: int, d: int) -> dict:
    """A prompt of ``tokens`` into an empty streaming head, in the largest chunks that fit
    (each checked against golden): the cycles of its programs run as one."""
    rng = np.random.default_rng(tokens)
    q, k, v = rng.integers(-128, 128, (g, tokens, d)), *(rng.integers(-128, 128, (tokens, d))
                                                       for _ in range(2))
    cfg = attention_config(arch)
    mult, shift = logit_multiplier(1 / 64, 1 / 64, d, cfg)
    chunk = DuoHead.largest_chunk(arch, g, tokens, d, d, window)
    head = DuoHead(arch, q, k, v, mult, shift, *window, max_chunk=chunk)
    ref = StreamingCacheFixed(d, *window, mult, shift, cfg)
    program = list(head.reset_program)
    while head.length < tokens:
        at, c = head.length, min(chunk, tokens - head.length)
        if not np.array_equal(head.step(c), ref.step(q[:, at:at + c], k[at:at + c],
                                                     v[at:at + c])):
            raise AssertionError(f"prefill benchmark: chunk at {at} differs from golden")
        program += head.last_program
    cycles = accel_timing(program, accel_params(arch)).cycles
    return {"tokens": tokens, "chunk": chunk, "cycles": cycles,
            "cycles_per_token": round(cycles / tokens, 1),
            "utilization": round(head.machine.counts["macs"] / (arch.array[0] * arch.array[1]
                                                                 * cycles), 4)}


def _long_decode(arch, context: int, g: int, d: int) -> dict:
    """A retrieval head's decode step with its keys and values streamed from DRAM in blocks
    (:mod:`hw.front.kernel_duo_long`), checked against golden: its cycles and traffic."""
    rng = np.random.default_rng(context)
    q, k, v = rng.integers(-128, 128, (g, d)), *(rng.integers(-128, 128, (context + 1, d))
                                                for _ in range(2))
    cfg = attention_config(arch)
    mult, shift = logit_multiplier(1 / 64, 1 / 64, d, cfg)
    run = run_long_decode(arch, q, k, v, mult, shift)
    if not np.array_equal(run.output, attention_head_int(q, k, v, mult, shift, None, cfg)):
        raise AssertionError(f"long-context decode at {context} differs from golden")
    c = run.machine.counts
    return {"context": context, "cycles": accel_timing(run.program, accel_params(arch)).cycles,
            "macs": c["macs"], "dram_bytes": c["dram_read_bytes"] + c["dram_written_bytes"],
            "instructions": len(run.program)}


def _long_prefill(arch, context: int, chunk: int, g: int, d: int, check: tuple) -> dict:
    """A retrieval head's prefill chunk of ``chunk`` tokens after ``context`` (keys and values
    streamed from DRAM, query tiles of :func:`default_tile`), costed tile by tile by the
    model (each tile's program timed alone; their sum), after a reduced ``check`` = (context,
    chunk) run on the reference machine against golden's causal head."""
    rng = np.random.default_rng(chunk)
    c0, n0 = check
    q = rng.integers(-128, 128, (g, n0, d))
    k, v = (rng.integers(-128, 128, (c0 + n0, d)) for _ in range(2))
    cfg = attention_config(arch)
    mult, shift = logit_multiplier(1 / 64, 1 / 64, d, cfg)
    mask = np.arange(c0 + n0)[None, :] <= c0 + np.arange(n0)[:, None]
    want = np.stack([attention_head_int(qh, k, v, mult, shift, mask, cfg) for qh in q])
    if not np.array_equal(run_long_prefill(arch, q, k, v, mult, shift).output, want):
        raise AssertionError(f"long prefill {c0}+{n0} differs from golden")
    tile = default_tile(arch, g, d, d)
    kb = largest_block(arch, g, d, d, c=tile)
    keys = context + chunk
    addr = np.cumsum([64, g * chunk * d, keys * d, keys * d, 64]).tolist()
    cycles = macs = dram = 0
    for t0, c in blocks(chunk, tile):
        op = LongAttention(g, c, context + t0 + c, d, d, mult, shift, kb, chunk, t0, *addr)
        program = long_attention_program(arch, op)
        cycles += accel_timing(program, accel_params(arch)).cycles
        cost = program_cost(program, arch)
        macs, dram = macs + cost.macs, dram + cost.dram_bytes
    row = {"context": context, "chunk": chunk, "tile": tile, "block": kb, "cycles": cycles,
           "cycles_per_token": round(cycles / chunk, 1), "macs": macs, "dram_bytes": dram,
           "utilization": round(macs / arch.pes / cycles, 4), "checked": list(check)}
    print(f"duo prefill retrieval: {row}", flush=True)
    return row


def _duo(arch, contexts, long_context: int | None) -> dict:
    """Decode steps of a Llama-3-8B KV head (4 query heads, d 128): streaming (sink 64 +
    recent 256) at ``contexts`` and ``long_context``, retrieval at ``contexts`` with its cache
    in the scratchpad (one slot a token: 128 B, 256 KiB hold 2k at most) and, up to
    ``long_context``, with its keys and values streamed from DRAM."""
    out = {}
    for name, window in (("streaming_64_256", (64, 256)), ("retrieval", None)):
        more = [long_context] if window and long_context else []
        out[name] = [_decode_step(arch, c, window, 4, 128) for c in [*contexts, *more]]
        print(f"duo decode {name}: {out[name]}", flush=True)
    longest = long_context or contexts[-1]
    out["retrieval_from_dram"] = [_long_decode(arch, c, 4, 128)
                                  for c in sorted({contexts[-1], longest})]
    print(f"duo decode retrieval_from_dram: {out['retrieval_from_dram']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes (a smoke run)")
    args = ap.parse_args()
    arch = load_arch(ARCH)
    start = time.perf_counter()
    svd_shapes = [(16, 256, 64, 32)] if args.quick else [(16, 256, 64, 32), (16, 512, 256, 32),
                                                         (32, 512, 128, 32)]
    tokens = [256] if args.quick else [256, 1024, 4096]        # 4096: Sana-1.6B's head
    contexts = [320, 400] if args.quick else [320, 512, 768]
    rtl = [("svdquant", (16, 256, 64, 32), {}),
           ("linear-attention", (64 if args.quick else 256, 32, 32), {}),
           ("duo-attention", (4, 48 if args.quick else 96, 64), {"window": (16, 32),
                                                                  "chunk": 32, "decode": 4}),
           ("duo-attention", (4, 48 if args.quick else 96, 64), {"chunk": 32, "decode": 4})]
    flux_m = 256 if args.quick else 4096
    result = {"arch": arch.name, "svdquant": _svdquant(arch, svd_shapes, flux_m),
              "linear_attention": _linear_attention(arch, tokens),
              "duo_decode": _duo(arch, contexts, None if args.quick else 32768),
              "duo_prefill_streaming_64_256": _prefill(arch, 512 if args.quick else 4096,
                                                       (64, 256), 4, 128),
              "duo_prefill_retrieval": _long_prefill(
                  arch, 1536 if args.quick else 28672, 512 if args.quick else 4096, 4, 128,
                  (200, 40) if args.quick else (1000, 100)),
              "rtl": _on_rtl(arch, rtl)}
    result["seconds"] = round(time.perf_counter() - start, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
