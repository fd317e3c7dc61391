"""The generation loop of :mod:`flows.e2e_generate` over a DuoAttention decoder twin
(:class:`~mapping.torch_llm.DuoLlama`): the float run (:func:`float_generation`, through
:class:`golden.kv_cache.DuoCache`, greedy, calibrating the static scales) and a quantized run
(:func:`quantized_generation`: W8A8 linears, the attention a caller's, teacher-forced) and
the GPU run (:func:`gpu_generation`: the linears on ``sw.int8_gemm``, each layer's attention
on one ``sw.duo_attention.DuoKVCache`` kept across the steps, :class:`flows.e2e_gpu.
GpuDuoCache`; teacher-forced).

Both run the prompt in chunks, then one token a step; a forward is ``embed``, the layers at
the chunk's first position, the final norm and LM head on the chunk's last token (its
logits). ``tokens`` are the greedy picks of the forwards that generate (the prompt's last
chunk, then each decode step): ``steps + 1`` of them.

Layer: flows.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .e2e import _Gemms, _w8a8

__all__ = ["Generation", "float_generation", "gpu_generation", "quantized_generation"]


@dataclass
class Generation:
    """One run: the logits of every forward, the greedy tokens, per layer its attention
    (the quantized runs'), the float run's static scales and expected cache positions (per
    layer, per KV head)."""

    logits: list[np.ndarray]
    tokens: list[int]
    #: every layer call's output (:func:`flows.e2e_blocks.recording`: ``layers.i#n``)
    blocks: list[tuple[str, np.ndarray]] = field(default_factory=list)
    attention: list[Any] = field(default_factory=list)
    scales: list[list[tuple[float, float, float]]] = field(default_factory=list)
    positions: list[list[np.ndarray]] = field(default_factory=list)
    runner: Any = None


def _forward(model, ids, pos: int) -> np.ndarray:
    x = model.embed(ids)
    for layer in model.layers:
        x = layer(x, pos)
    return model.head(x)[0, -1].detach().to_dense().float().numpy()


def _loop(torch, model, ids: np.ndarray, chunk: int, steps: int, forced: list[int] | None,
          prompt_done: Callable[[], None] = lambda: None
          ) -> tuple[list[np.ndarray], list[int], list[tuple[str, np.ndarray]]]:
    """The prompt in chunks, then ``steps`` decode steps fed ``forced`` tokens (``None``: the
    greedy token before); (logits per forward, the generating forwards' greedy tokens, every
    layer call's output)."""
    from .e2e_blocks import recording

    logits, pos, blocks = [], 0, []
    with torch.no_grad(), recording(model, blocks):
        for s0 in range(0, len(ids), chunk):
            part = torch.as_tensor(ids[s0:s0 + chunk], dtype=torch.long)[None]
            logits.append(_forward(model, part, pos))
            pos += part.shape[1]
        prompt_done()
        tokens = [int(np.argmax(logits[-1]))]
        for i in range(steps):
            tok = tokens[-1] if forced is None else forced[i]
            logits.append(_forward(model, torch.tensor([[tok]]), pos))
            pos += 1
            tokens.append(int(np.argmax(logits[-1])))
    return logits, tokens, blocks


def _copy(model):
    return copy.deepcopy(model).float().eval()


def float_generation(model, ids: np.ndarray, chunk: int, steps: int, headroom: float
                     ) -> Generation:
    """The float run (module docstring): greedy from ``ids``; per layer and KV head the scales
    ``headroom max|x| / 127`` of its queries, keys and values over the prompt (1.0 for an all
    zero tensor) and the positions its :class:`golden.kv_cache.DuoCache` holds at the end, in
    slot order (``-1``: an empty slot)."""
    import torch

    from golden.kv_cache import DuoCache, FullKVCache

    model = _copy(model)
    recording = [True]
    caches, stats = [], []
    for layer in model.layers:
        attn = layer.attn
        d = attn.k_retrieval.shape[-1]
        cache = DuoCache(1, [h < attn.retrieval for h in range(attn.kv_heads)], d,
                         *attn.window)
        amax = np.zeros((attn.kv_heads, 3))

        def forward(q, k, v, pos, cache=cache, amax=amax):
            if recording[0]:
                g = q.shape[1] // k.shape[1]
                for h in range(k.shape[1]):
                    for i, x in enumerate((q[:, h * g:(h + 1) * g], k[:, h], v[:, h])):
                        amax[h, i] = max(amax[h, i], float(x.abs().max()))
            return cache.step(q, k, v)

        attn.forward = forward
        caches.append(cache)
        stats.append(amax)
    logits, tokens, blocks = _loop(torch, model, ids, chunk, steps, None,
                                   lambda: recording.__setitem__(0, False))
    scales = [[tuple(float(headroom * a / 127) if a > 0 else 1.0 for a in row) for row in amax]
              for amax in stats]
    positions = []
    for cache in caches:
        per_head = []
        for c in cache.caches:
            if isinstance(c, FullKVCache):
                per_head.append(np.arange(c.length))
            else:
                slots = np.full(c.sink + c.recent, -1, dtype=np.int64)
                slots[c.slots_in_order()] = c.held_positions()
                per_head.append(slots)
        positions.append(per_head)
    return Generation(logits, tokens, blocks, scales=scales, positions=positions)


def quantized_generation(model, ids: np.ndarray, chunk: int, forced: list[int],
                         runner: _Gemms, attention: Callable[[Any, list, str], Any],
                         scales: list[list[tuple[float, float, float]]]) -> Generation:
    """A quantized run (module docstring) teacher-forced with ``forced`` (the float run's
    tokens): linears as W8A8 GEMMs through ``runner``; each layer's attention
    ``attention(layer.attn, scales[layer], path)`` (a callable ``(torch, q, k, v, pos)``)."""
    import torch

    model = _copy(model)
    for path, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            mod.forward = lambda x, mod=mod, path=path: _w8a8(torch, mod, x, runner,
                                                              runner.call(path))
    heads = []
    for li, layer in enumerate(model.layers):
        att = attention(layer.attn, scales[li], f"layers.{li}.attn")
        layer.attn.forward = lambda q, k, v, pos, att=att: att(torch, q, k, v, pos)
        heads.append(att)
    logits, tokens, blocks = _loop(torch, model, ids, chunk, len(forced) - 1, forced)
    return Generation(logits, tokens, blocks, attention=heads, runner=runner)


def gpu_generation(model, ids: np.ndarray, chunk: int, forced: list[int]) -> Generation:
    """The GPU run (module docstring) teacher-forced with ``forced``: records on its
    :class:`flows.e2e_gpu.GpuRunner` (``runner``)."""
    import torch

    from .e2e_gpu import GpuDuoCache, GpuRunner, gpu_linear

    model, runner = _copy(model), GpuRunner()
    for path, mod in model.named_modules():
        if isinstance(mod, torch.nn.Linear):
            mod.forward = lambda x, mod=mod, path=path: gpu_linear(mod, x, runner,
                                                                   runner.call(path))
    for li, layer in enumerate(model.layers):
        attn = layer.attn
        cache = GpuDuoCache(runner, [h < attn.retrieval for h in range(attn.kv_heads)],
                            attn.k_retrieval.shape[-1], *attn.window, f"layers.{li}.attn")
        attn.forward = lambda q, k, v, pos, cache=cache: cache(q, k, v)
    logits, tokens, blocks = _loop(torch, model, ids, chunk, len(forced) - 1, forced)
    return Generation(logits, tokens, blocks, runner=runner)
