"""A DuoAttention decoder twin generating on the accelerator: a chunked prefill of a prompt
longer than ``sink + recent``, then decode steps, the KV cache kept in the accelerator's
memories from step to step (:func:`run_generate`).

The twin (:data:`mapping.torch_models.TORCH_TWINS`, a :class:`~mapping.torch_llm.DuoLlama`:
embedding, Llama layers, final norm and LM head) runs three ways over the same tokens:

* **float**: the twin in float32 with each layer's attention through a
  :class:`golden.kv_cache.DuoCache` (retrieval heads a full cache, streaming heads the sink +
  ring cache, chunk by chunk). It *generates*: the prompt (``prompt`` seeded random ids) in
  chunks of ``chunk``, then ``steps`` decode steps, each feeding the greedy token of the step
  before. It also calibrates the static int8 scales: per layer and KV head, ``s = headroom
  max|x| / 127`` of its queries (the group's), keys and values over the prompt.
* **accelerator**: the same tokens (teacher-forced with the float run's), every
  ``nn.Linear`` a W8A8 GEMM on the accelerator (:func:`flows.e2e._w8a8`), every KV head a
  :class:`hw.front.kernel_duo_session.HeadSession` on its own reference machine for the whole
  generation: the chunk's queries, keys and values quantized with the head's static scales
  (:func:`golden.linear_attention_fixed.quantize_int8`: saturating; saturated codes are
  counted), the logit multiplier ``(mult, shift)`` of ``s_q s_k / sqrt(D)``
  (:func:`golden.attention_fixed.logit_multiplier`) fixed per head, the output decoded
  ``codes s_v / 2**Fo``. Beside each session a golden cache
  (:class:`golden.attention_cache_fixed.StreamingCacheFixed` /
  :class:`~golden.attention_cache_fixed.FullCacheFixed`) takes the same codes: every step's
  output must equal it bit for bit, and its error against the exact attention of the codes
  stay within golden's bound (:func:`flows.e2e_duo.head_error_bound`).
* **gpu** (``gpu=True``): the same tokens with the linears on ``sw.int8_gemm`` (the
  accelerator run's W8A8, so bit for bit its linears) and each layer's attention on one
  ``sw.duo_attention.DuoKVCache`` kept across the steps (Triton; the interpreter without a
  GPU), each call against :class:`golden.kv_cache.DuoCache` fed the same inputs (``<=
  1e-5``, launches counted: :class:`flows.e2e_gpu.GpuDuoCache`); its logits against the
  float run's (``max_err_gpu``) and the accelerator's (``gpu_vs_accel``).
* **golden**: the same chain with :func:`golden.int_gemm.int_gemm` and golden's fixed-point
  caches alone: the accelerator run's logits must equal it bit for bit at every step.

**Records.** A record per linear call and per KV head and step (``shape`` ``(G C, keys,
D)``; ``mapper_cycles``: :func:`mapping.accel_cost.cost_op`'s fused cost of the step's
``Attention`` of ``C`` queries at context ``L + C``, which must equal the cycle model's
cycles of the step's program). After the generation, per KV head a :class:`CacheCheck`:
its cache as the memories hold it (:meth:`HeadSession.cache`) equal to golden's fixed-point
cache (codes and positions, slot order) and its positions to :class:`golden.kv_cache`'s
(the float run's); with ``engine="fast"`` the head's whole life (every program, in order)
replayed on the RTL (Verilator) from the DRAM the host wrote: its DRAM must equal the
reference machine's and its cycles the cycle model's on the same program.

Layer: flows (it runs the RTL engines).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from golden.attention_cache_fixed import FullCacheFixed, StreamingCacheFixed
from golden.attention_fixed import logit_multiplier, position_mask
from golden.linear_attention_fixed import decode, quantize_int8
from hw.front.accel_params import accel_params
from hw.front.accel_timing import accel_timing
from hw.front.arch import ArchSpec
from hw.front.kernel_duo import attention_config
from hw.front.kernel_duo_session import HeadSession
from mapping.accel_cost import cost_op
from mapping.ir import Attention

from .e2e import E2E_ENGINES, OpRecord, _Gemms
from .e2e_blocks import block_errors
from .e2e_duo import decoded_head_error, has_attention_units
from .e2e_generate_runs import float_generation, gpu_generation, quantized_generation
from .e2e_host import HostCosted, HostRecord, uncosted_kinds
from .e2e_tables import aligned

__all__ = ["CacheCheck", "GenerateRun", "caches_table", "run_generate"]

HEADROOM = 1.25
"""Static scales: ``HEADROOM`` times the prompt's absmax (room for decode tokens)."""


@dataclass(frozen=True)
class CacheCheck:
    """One KV head's cache after the generation: ``tokens`` written, ``programs`` run (its
    whole life), their cycles by the model and the RTL (``None``: reference engine), whether
    the RTL's DRAM equals the reference machine's (``True`` unmeasured) and the cache golden's
    (codes and positions)."""

    name: str
    kind: str
    tokens: int
    programs: int
    model_cycles: int
    rtl_cycles: int | None
    dram_match: bool
    cache_match: bool

    @property
    def passed(self) -> bool:
        return self.dram_match and self.cache_match and self.rtl_cycles in (
            None, self.model_cycles)


@dataclass(frozen=True)
class GenerateRun(HostCosted):
    """A generation's three runs (module docstring): the accelerator's records, the caches'
    checks, per forward (the prompt's chunks, then the decode steps) the logits' max error
    against float; the greedy tokens of float and accelerator; codes saturated by the static
    scales."""

    model: str
    arch: str
    engine: str
    prompt: int
    chunk: int
    steps: int
    ops: tuple[OpRecord, ...]
    caches: tuple[CacheCheck, ...]
    step_errors: tuple[float, ...]
    rel_err_accel: float
    tokens_float: tuple[int, ...]
    tokens_accel: tuple[int, ...]
    bit_exact: bool
    saturated: int
    torch_ops: tuple[str, ...]
    gpu_ops: tuple = ()
    max_err_gpu: float | None = None
    rel_err_gpu: float | None = None
    gpu_vs_accel: float | None = None
    tokens_gpu: tuple[int, ...] = ()
    #: per layer call (:mod:`flows.e2e_blocks`): (``layers.i#n``, max abs error, relative)
    blocks: tuple[tuple[str, float, float], ...] = ()
    #: every forward's operators left in torch, costed on the host
    #: (:mod:`flows.e2e_generate_host`)
    host_ops: tuple[HostRecord, ...] = ()

    @property
    def max_err_accel(self) -> float:
        return max(self.step_errors)

    @property
    def cycles_match(self) -> bool:
        return all(op.cycles_match for op in self.ops) and all(
            c.rtl_cycles in (None, c.model_cycles) for c in self.caches)

    @property
    def kv_cache_match(self) -> bool:
        return all(c.cache_match and c.dram_match for c in self.caches)

    @property
    def within_bounds(self) -> bool:
        return all(op.err <= op.err_bound for op in self.ops)

    @property
    def gpu_within_bounds(self) -> bool:
        """Every GPU call launched its kernels and stayed within its bound."""
        return all(op.passed for op in self.gpu_ops)

    @property
    def passed(self) -> bool:
        return self.bit_exact and self.cycles_match and self.kv_cache_match \
            and self.within_bounds and self.gpu_within_bounds

    def report(self) -> dict[str, Any]:
        """The one JSON line: model, bit_exact, max_err_accel, cycles_match, pass and more."""
        return {"model": self.model, "arch": self.arch, "engine": self.engine,
                "prompt": self.prompt, "chunk": self.chunk, "steps": self.steps,
                "bit_exact": self.bit_exact, "max_err_accel": self.max_err_accel,
                "rel_err_accel": self.rel_err_accel, "cycles_match": self.cycles_match,
                "kv_cache_match": self.kv_cache_match, "within_bounds": self.within_bounds,
                "tokens_match": _agreement(self.tokens_accel, self.tokens_float),
                "max_err_gpu": self.max_err_gpu, "rel_err_gpu": self.rel_err_gpu,
                "gpu_vs_accel": self.gpu_vs_accel, "gpu_within_bounds": self.gpu_within_bounds,
                "gpu_ops": len(self.gpu_ops),
                "tokens_match_gpu": _agreement(self.tokens_gpu, self.tokens_float),
                "saturated_codes": self.saturated, "accel_ops": len(self.ops),
                "accel_cycles": self.accel_cycles, "host_ops": len(self.host_ops),
                "host_cycles": self.host_cycles,
                "host_uncosted": uncosted_kinds(self.host_ops),
                "total_cycles": self.total_cycles,
                "torch_ops": list(self.torch_ops), "blocks": len(self.blocks),
                "max_block_rel_err": max((b[2] for b in self.blocks), default=None),
                "pass": self.passed}


def _agreement(tokens: tuple[int, ...], ref: tuple[int, ...]) -> str | None:
    """``"n/m"``: ``n`` of the ``m`` greedy tokens equal to the float run's (None: no run)."""
    if not tokens:
        return None
    return f"{sum(a == b for a, b in zip(tokens, ref, strict=True))}/{len(ref)}"


@dataclass
class _Head:
    """One KV head of one run: its static scales, logit multiplier, golden cache and (the
    accelerator run) session."""

    name: str
    window: tuple[int, int] | None
    scales: tuple[float, float, float]
    mult: int
    shift: int
    gold: StreamingCacheFixed | FullCacheFixed
    session: HeadSession | None


class _Attention:
    """The quantized runs' attention (module docstring): per layer and KV head a
    :class:`_Head`; records on ``runner`` (a :class:`flows.e2e._Gemms`) when it measures."""

    def __init__(self, runner: _Gemms, attn, scales: dict, capacity: int, path: str) -> None:
        arch, cfg = runner.arch, attention_config(runner.arch)
        self.runner, self.cfg, self.saturated = runner, cfg, 0
        self.heads: list[_Head] = []
        g, d = attn.q_heads // attn.kv_heads, attn.k_retrieval.shape[-1]
        for h in range(attn.kv_heads):
            window = None if h < attn.retrieval else attn.window
            sq, sk, sv = scales[h]
            mult, shift = logit_multiplier(sq, sk, d, cfg)
            gold = (StreamingCacheFixed(d, *window, mult, shift, cfg) if window
                    else FullCacheFixed(d, mult, shift, cfg))
            session = (HeadSession(arch, g, capacity, d, d, mult, shift, window)
                       if runner.engine is not None else None)
            kind = "streaming" if window else "retrieval"
            self.heads.append(_Head(f"{path}.{kind}[0,{h}]", window, (sq, sk, sv), mult, shift,
                                    gold, session))
        self.calls = 0

    def __call__(self, torch, q, k, v, pos: int):
        """``(1, H, C, D)`` q, ``(1, Hkv, C, D)`` k, v at positions ``pos ..``: the outputs."""
        self.calls += 1
        hkv, c = k.shape[1], k.shape[2]
        g = q.shape[1] // hkv
        out = np.zeros((1, q.shape[1], c, v.shape[-1]), np.float32)
        for h, head in enumerate(self.heads):
            x = (q[0, h * g:(h + 1) * g], k[0, h], v[0, h])
            codes = []
            for t, s in zip(x, head.scales, strict=True):
                arr = t.detach().float().numpy()
                code, _ = quantize_int8(arr, s)
                self.saturated += int(np.count_nonzero(np.abs(arr / s) > 127.5))
                codes.append(code)
            out[0, h * g:(h + 1) * g] = decode(self._step(head, *codes, pos), head.scales[2],
                                               self.cfg.out_frac_bits)
        return torch.from_numpy(out).to(q.dtype)

    def _step(self, head: _Head, qc, kc, vc, pos: int) -> np.ndarray:
        """One step of ``head`` (golden's cache, and the session's with its record)."""
        keys, vals, kpos = (np.concatenate([a, b]) for a, b in zip(
            (head.gold.k, head.gold.v, self._positions(head)),
            (kc, vc, np.arange(pos, pos + len(kc))), strict=True))
        gold = head.gold.step(qc, kc, vc)
        if head.session is None:
            return gold
        got = head.session.step(qc, kc, vc)
        g, c, d = qc.shape
        mask = position_mask(np.arange(pos, pos + c), kpos, *(head.window or (None, None)))
        dec = decode(got, head.scales[2], self.cfg.out_frac_bits).reshape(-1, got.shape[-1])
        err, bound = decoded_head_error(dec, qc.reshape(-1, d), keys, vals, head.scales,
                                        head.mult, head.shift, np.tile(mask, (g, 1)), self.cfg)
        self.runner.records.append(OpRecord(**self._measured(head, got, gold, pos, c, d),
                                            err=err, err_bound=bound))
        return got

    @staticmethod
    def _positions(head: _Head) -> np.ndarray:
        gold = head.gold
        return gold.positions if head.window else np.arange(gold.length)

    def _measured(self, head: _Head, got, gold, pos: int, c: int, d: int) -> dict:
        arch, g = self.runner.arch, got.shape[0]
        kind = "streaming" if head.window else "retrieval"
        cost = cost_op(arch, Attention(f"attn_{kind}", 1, g, 1, d, c, pos + c, True,
                                       head.window, "int8", "int8"))
        model = accel_timing(head.session.programs[-1], accel_params(arch)).cycles
        keys = len(head.gold.k) if not head.window else int((self._positions(head) >= 0).sum())
        return {"name": f"{head.name}@{pos}+{c}", "target": "accel", "shape": (g * c, keys, d),
                "dataflow": cost.dataflow, "model_cycles": model, "rtl_cycles": None,
                "mapper_cycles": cost.cycles, "dram_bytes": cost.dram_bytes,
                "utilization": cost.utilization, "bit_exact": bool(np.array_equal(got, gold))}


def _cache_check(arch: ArchSpec, engine: str, head: _Head, gold: _Head, expected_positions
                 ) -> CacheCheck:
    """Head ``head``'s session after the generation against the golden run's ``gold`` and the
    float run's positions (slot order); its whole life replayed on the RTL (fast engine)."""
    session = head.session
    positions, k, v = session.cache()
    same = (np.array_equal(positions, expected_positions)
            and np.array_equal(positions, gold.gold.positions if gold.window
                               else np.arange(gold.gold.length))
            and np.array_equal(k, gold.gold.k) and np.array_equal(v, gold.gold.v))
    words = [ins for p in session.programs for ins in p]
    model = accel_timing(words, accel_params(arch)).cycles
    rtl, dram = None, True
    if engine == "fast":
        from .accel_engines import run_program

        r = run_program(arch, words, bytes(session.dram_in), engine="fast",
                        expected_cycles=model)
        rtl, dram = r.cycles, r.dram == session.machine.dram.tobytes()
    return CacheCheck(head.name, "streaming" if head.window else "retrieval",
                      session.length, len(session.programs), model, rtl, dram, bool(same))


def run_generate(name: str, arch: ArchSpec, *, steps: int = 4, prompt: int = 24,
                 chunk: int = 8, engine: str = "fast", seed: int = 0,
                 retrieval_heads: int | None = None, gpu: bool = True,
                 host: bool = True) -> GenerateRun:
    """Twin ``name`` (a DuoAttention decoder of :data:`~mapping.torch_models.TORCH_TWINS`)
    generating ``steps`` tokens after a ``prompt``-token prompt prefilled in chunks of
    ``chunk`` on ``arch`` (module docstring); ``retrieval_heads`` of each layer's KV heads
    full (default: half); with ``gpu`` also the GPU run; with ``host`` every forward's
    operators left in torch costed on the host (:mod:`flows.e2e_generate_host`).
    ``ValueError`` for another model, an unknown engine, a prompt not longer than ``sink +
    recent``, counts below 1, or an architecture without the attention units."""
    from mapping.torch_models import TORCH_TWINS

    if engine not in E2E_ENGINES:
        raise ValueError(f"engine must be one of {', '.join(E2E_ENGINES)}, got {engine!r}")
    for key, val in (("steps", steps), ("prompt", prompt), ("chunk", chunk)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{key} must be an int >= 1, got {val!r}")
    duo = [n for n in TORCH_TWINS if "duo" in n]
    if name not in duo:
        raise ValueError(f"generation runs a DuoAttention decoder twin ({', '.join(duo)}), "
                         f"got {name!r}")
    if not has_attention_units(arch):
        raise ValueError(f"architecture {arch.name!r} lacks the attention units (requant, "
                         "softmax, normalizer, kv_cache) the KV heads run on")
    kw = {} if retrieval_heads is None else {"retrieval_heads": retrieval_heads}
    model, _ = TORCH_TWINS[name](seed=seed, context=prompt + steps, **kw)
    if retrieval_heads is None:
        model, _ = TORCH_TWINS[name](seed=seed, context=prompt + steps,
                                     retrieval_heads=model.layers[0].attn.kv_heads // 2)
    window = model.layers[0].attn.window
    if prompt <= sum(window):
        raise ValueError(f"the prompt ({prompt} tokens) must be longer than sink + recent "
                         f"({window[0]} + {window[1]}) for the ring to wrap")
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, model.embed.num_embeddings, prompt)
    ref = float_generation(model, ids, chunk, steps, HEADROOM)
    runs = {}
    for key, eng in (("accel", engine), ("golden", None)):
        runner = _Gemms(arch, eng)
        runs[key] = quantized_generation(
            model, ids, chunk, ref.tokens, runner,
            lambda attn, scales, path, r=runner: _Attention(r, attn, scales, prompt + steps,
                                                            path), ref.scales)
    acc, gold = runs["accel"], runs["golden"]
    exact = all(np.array_equal(a, b) for a, b in zip(acc.logits, gold.logits, strict=True)) \
        and all(op.bit_exact for op in acc.runner.records)
    errs = tuple(float(np.abs(a - f).max()) for a, f in zip(acc.logits, ref.logits,
                                                              strict=True))
    scale = max(float(np.abs(f).max()) for f in ref.logits) or 1.0
    caches = tuple(_cache_check(arch, engine, h, gh, pos)
                   for att, gatt, fpos in zip(acc.attention, gold.attention, ref.positions,
                                              strict=True)
                   for h, gh, pos in zip(att.heads, gatt.heads, fpos, strict=True))
    return GenerateRun(name, arch.name, engine, prompt, chunk, steps,
                       tuple(acc.runner.records), caches, errs, max(errs) / scale,
                       tuple(ref.tokens), tuple(acc.tokens), exact,
                       sum(a.saturated for a in acc.attention), _torch_kinds(model),
                       blocks=block_errors(acc.blocks, ref.blocks),
                       host_ops=_host_ops(name, arch, prompt, chunk, steps, model) if host
                       else (),
                       **(_gpu_fields(model, ids, chunk, ref, acc, scale) if gpu else {}))


def _host_ops(name: str, arch: ArchSpec, prompt: int, chunk: int, steps: int, model
              ) -> tuple[HostRecord, ...]:
    """The host records of the generation's forwards: the prompt's chunks, then the steps."""
    from .e2e_generate_host import generation_host_records

    forwards = [(p, min(chunk, prompt - p)) for p in range(0, prompt, chunk)]
    forwards += [(prompt + i, 1) for i in range(steps)]
    return generation_host_records(name, arch, forwards, model.layers[0].attn.retrieval)


def _gpu_fields(model, ids, chunk: int, ref, acc, scale: float) -> dict[str, Any]:
    """The GPU run's fields of :class:`GenerateRun` (its logits against the float run's, of
    largest magnitude ``scale``, and the accelerator's)."""
    run = gpu_generation(model, ids, chunk, ref.tokens)
    err = max(float(np.abs(g - f).max()) for g, f in zip(run.logits, ref.logits, strict=True))
    vs = max(float(np.abs(g - a).max()) for g, a in zip(run.logits, acc.logits, strict=True))
    return {"gpu_ops": tuple(run.runner.records), "max_err_gpu": err,
            "rel_err_gpu": err / scale, "gpu_vs_accel": vs, "tokens_gpu": tuple(run.tokens)}


def _torch_kinds(model) -> tuple[str, ...]:
    """The kinds of ``model``'s leaves that stay in torch (all but linears and attention)."""
    import torch

    from mapping.torch_attention import DuoAttention

    return tuple(sorted({type(m).__name__ for m in model.modules() if not list(m.children())
                         and not isinstance(m, torch.nn.Linear | DuoAttention)}))


def caches_table(run: GenerateRun) -> str:
    """A line per KV head: tokens, programs, cycles (model / RTL) of its whole life, whether
    the RTL's DRAM and the cache matched."""
    rows = [("kv head", "kind", "tokens", "programs", "model", "rtl", "dram", "cache")]
    for c in run.caches:
        rows.append((c.name, c.kind, str(c.tokens), str(c.programs), str(c.model_cycles),
                     "-" if c.rtl_cycles is None else str(c.rtl_cycles),
                     "yes" if c.dram_match else "NO", "yes" if c.cache_match else "NO"))
    return aligned(rows)
