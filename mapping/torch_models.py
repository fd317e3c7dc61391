"""Torch twins of the zoo's tiny models, for the torch import (:mod:`mapping.fx_import`).

``TORCH_TWINS[name]()`` builds the twin of ``mapping.zoo.model(name, **TWIN_OPTIONS.get(name,
{}))`` at random weights (fixed seed, the global RNG left untouched) and returns ``(module,
example_inputs)``; the module runs on the inputs, and importing it gives a graph equivalent
(:func:`mapping.fx_compare.equivalent`) to the hand-written one. The models are in
:mod:`mapping.torch_llm` and :mod:`mapping.torch_dit`, their blocks in
:mod:`mapping.torch_blocks` and :mod:`mapping.torch_attention`.

``tiny-vila-u`` is the one twin that needs options: the hand-written graph runs each group
(``buckets``) of decode steps at the group's mean context, the twin each step at its own
context, which is the graph with one bucket per image token.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from .torch_blocks import attach_loras
from .torch_dit import Flux, Sana
from .torch_llm import DuoLlama, VilaUGeneration
from .zoo_llama import LlamaDims

__all__ = ["E2E_TWIN_OPTIONS", "TORCH_TWINS", "TWIN_OPTIONS", "tiny_flux1_dev",
           "tiny_llama2_7b_duo", "tiny_llama3_8b_duo", "tiny_sana", "tiny_vila_u"]

Twin = tuple[nn.Module, tuple[Any, ...]]
BF16 = torch.bfloat16


def _seeded(seed: int, build: Callable[[], Twin]) -> Twin:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module, inputs = build()
    return module.eval(), inputs


def _duo(d: LlamaDims, phase: str, context: int, chunk: int, retrieval_heads: int, sink: int,
         recent: int, seed: int) -> Twin:
    if phase not in ("decode", "prefill"):
        raise ValueError(f"phase must be 'decode' or 'prefill', got {phase!r}")
    tokens = 1 if phase == "decode" else chunk
    return _seeded(seed, lambda: (
        DuoLlama(d, context, tokens, retrieval_heads, sink, recent),
        (torch.randint(0, d.vocab, (1, tokens)),)))


def tiny_llama3_8b_duo(phase: str = "decode", context: int = 64, chunk: int = 16,
                       retrieval_heads: int = 1, sink: int = 4, recent: int = 8,
                       seed: int = 0) -> Twin:
    """Twin of ``tiny-llama3-8b-duo``: 2 layers, hidden 64, 4 q / 2 kv heads of 16, FFN 128,
    vocab 256, ``retrieval_heads`` of the 2 KV heads full, token ids in."""
    return _duo(LlamaDims(2, 64, 4, 2, 16, 128, 256), phase, context, chunk, retrieval_heads,
                sink, recent, seed)


def tiny_llama2_7b_duo(phase: str = "decode", context: int = 64, chunk: int = 16,
                       retrieval_heads: int = 1, sink: int = 4, recent: int = 8,
                       seed: int = 0) -> Twin:
    """Twin of ``tiny-llama2-7b-duo``: as :func:`tiny_llama3_8b_duo` with 4 / 4 heads (MHA)."""
    return _duo(LlamaDims(2, 64, 4, 4, 16, 128, 256), phase, context, chunk, retrieval_heads,
                sink, recent, seed)


def tiny_flux1_dev(seed: int = 0, lora_rank: int = 0, lora_scale: float = 1.0) -> Twin:
    """Twin of ``tiny-flux1-dev`` (SVDQuant rank 32, W4A16 modulation): hidden 64, 2 heads,
    MLP 256, 2 + 2 blocks, 16 image and 8 text tokens. ``lora_rank`` > 0 attaches a seeded
    LoRA of that rank and ``lora_scale`` to each of its 20 SVDQuant linears
    (:func:`~mapping.torch_blocks.attach_loras` with ``seed``): their branches gain the rank
    (32 + ``lora_rank`` in the import), their int4 codes are the same; 0 (the default) is
    the hand-written zoo graph's twin."""
    def build() -> Twin:
        model = Flux(64, 2, 256, 2, 2, in_ch=64, ctx_dim=64, vec_dim=64, time_dim=64,
                     txt_tokens=8)
        return model, (torch.randn(1, 16, 64).to(BF16), torch.randn(1, 8, 64).to(BF16),
                       torch.tensor([0.5]), torch.tensor([3.5]), torch.randn(1, 64).to(BF16))
    model, inputs = _seeded(seed, build)
    attach_loras(model, lora_rank, seed, lora_scale)
    return model, inputs


def tiny_sana(size: str = "0.6B", seed: int = 0) -> Twin:
    """Twin of ``tiny-sana-0.6b`` (hidden 64, 2 cross heads, FFN 160) or ``tiny-sana-1.6b``
    (128, 4, 320): depth 2, 4 x 4 latent tokens of 32 channels, 8 caption tokens of 64."""
    dims = {"0.6B": (64, 2, 160), "1.6B": (128, 4, 320)}
    if size not in dims:
        raise ValueError(f"size must be one of {sorted(dims)}, got {size!r}")
    c, heads, ffn = dims[size]

    def build() -> Twin:
        model = Sana(c, 2, heads, ffn, side=4, caption_ch=64, time_dim=64)
        return model, (torch.randn(1, 32, 4, 4).to(BF16), torch.tensor([0.5]),
                       torch.randn(1, 8, 64).to(BF16))
    return _seeded(seed, build)


def tiny_vila_u(seed: int = 0) -> Twin:
    """Twin of ``tiny-vila-u`` with one bucket per token: a 2-layer LLaMA of hidden 64 (4
    heads), a 2-layer depth transformer of 64 (4 heads), 4 codes of a 128-entry codebook,
    16 image tokens after a 4-token prompt; teacher-forced code embeddings in."""
    def build() -> Twin:
        model = VilaUGeneration(LlamaDims(2, 64, 4, 4, 16, 128, 256), embed=64, heads=4,
                                depth_layers=2, codes=4, codebook=128, code_dim=64,
                                tokens=16, prompt=4)
        return model, (torch.randn(16, 2, 4, 64).to(BF16),)
    return _seeded(seed, build)


TORCH_TWINS: dict[str, Callable[[], Twin]] = {
    "tiny-flux1-dev": tiny_flux1_dev,
    "tiny-sana-0.6b": partial(tiny_sana, "0.6B"),
    "tiny-sana-1.6b": partial(tiny_sana, "1.6B"),
    "tiny-llama3-8b-duo": tiny_llama3_8b_duo,
    "tiny-llama2-7b-duo": tiny_llama2_7b_duo,
    "tiny-vila-u": tiny_vila_u,
}
"""Zoo tiny model name -> builder of its torch twin ``(module, example_inputs)``."""

TWIN_OPTIONS: dict[str, dict[str, Any]] = {"tiny-vila-u": {"buckets": 16}}
"""Zoo options under which a twin's import equals the hand-written graph exactly."""

E2E_TWIN_OPTIONS: dict[str, dict[str, Any]] = {"tiny-flux1-dev": {"lora_rank": 16}}
"""Builder options of the twins the e2e run (:func:`flows.e2e.run_e2e`) takes beyond the
defaults: FLUX.1 with a rank-16 LoRA on its SVDQuant linears (branch rank 32 + 16 = 48, a
multiple of the 16-wide array: no padding), which shows the LoRA running on the int4 codes
the layer had without it. Not the zoo graph's twin (:data:`TWIN_OPTIONS`)."""
