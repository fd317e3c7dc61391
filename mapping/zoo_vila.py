"""VILA-U image generation (256 image tokens at 256^2) in the operator IR, 16-bit.

Per image token: one LLaMA-2-7B decode step, batch 2 (classifier-free guidance), then the
residual depth transformer samples the token's D codes one after another. Shapes:

* LLM: LLaMA-2-7B (32 layers, hidden 4096, 32 heads, FFN 11008; workloads.md, mit-han-lab/vila-u).
* Depth transformer (VILA-U's ``rqvaesigliptransformer/rqtransformer``, adapted from
  kakaobrain/rq-vae-transformer): ``embed_dim`` 2560, 6 blocks of 40 heads (head dim 64), GPT
  blocks with a 4x GELU MLP; ``in_mlp_2`` projects the LLM hidden state (4096 -> 2560),
  ``in_mlp_1`` the cumulative code embeddings (1024 -> 2560); a LayerNorm + linear head over the
  16384-entry codebook. Tokenizer at 256^2: ``code_shape`` 16 x 16 x 4 (D = 4), codebook 16384,
  code dim 1024. Found in public forks of VILA-U's code (``AttentionBlockConfig`` defaults
  embed 2560 / 40 heads / 6 layers; the RQ-VAE wrapper's defaults); not VILA-U's own repository.
* The generated token is fed back through the projector, assumed VILA's ``mlp2x_gelu``
  (1024 -> 4096 -> 4096) on the summed code embeddings.

Modelled with a KV cache in the depth transformer (each code step runs one new position;
VILA-U's reference recomputes the prefix); the LM head, the text prompt's prefill and the
RQ-VAE decoder are not in the graph. Decode attention over the growing context runs in
``buckets`` groups of tokens, each at its group's mean context rounded up (at most half a key
per step over the exact sum).
"""

from __future__ import annotations

from dataclasses import dataclass

from .ir import Attention, Elementwise, KVCacheWrite, Linear, ModelGraph, Norm, Op, Stage
from .zoo_llama import LLAMA2_7B, LlamaDims, decoder_layer

__all__ = ["tiny_vila_u", "vila_u_generation"]

_SOURCE = ("mit-han-lab/vila-u; depth transformer: forks of vila_u/model/multimodal_encoder/"
           "rqvaesigliptransformer (rqtransformer, configuration_rqtransformer), "
           "kakaobrain/rq-vae-transformer; meta-llama/Llama-2-7b-hf config.json")


@dataclass(frozen=True)
class _Depth:
    embed: int
    heads: int
    layers: int
    codes: int
    codebook: int
    code_dim: int


_FULL = (LLAMA2_7B, _Depth(2560, 40, 6, 4, 16384, 1024))
_TINY = (LlamaDims(2, 64, 4, 4, 16, 128, 256), _Depth(64, 4, 2, 4, 128, 64))


def _depth_layer(x: _Depth, batch: int) -> list[Op]:
    """One GPT block on one new position (``batch`` rows), appending to a ``codes``-long cache."""
    e = x.embed
    return [Norm("ln1", "layer", batch, e), Linear("qkv", batch, e, 3 * e, bias=True),
            KVCacheWrite("kv_write", batch, 1, x.heads, e // x.heads, x.codes),
            Linear("proj", batch, e, e, bias=True), Elementwise("attn_add", "add", batch * e),
            Norm("ln2", "layer", batch, e), Linear("fc1", batch, e, 4 * e, bias=True),
            Elementwise("gelu", "gelu", batch * 4 * e), Linear("fc2", batch, 4 * e, e, bias=True),
            Elementwise("mlp_add", "add", batch * e)]


def _llm_stages(d: LlamaDims, x: _Depth, b: int, tokens: int, prompt: int,
                buckets: int) -> list[Stage]:
    kv = KVCacheWrite("kv_write", b, 1, d.kv_heads, d.head_dim, prompt + tokens)
    token_in = [Elementwise("code_sum", "add", b * x.code_dim, inputs=x.codes),
                Linear("proj_fc1", b, x.code_dim, d.hidden, bias=True),
                Elementwise("proj_gelu", "gelu", b * d.hidden),
                Linear("proj_fc2", b, d.hidden, d.hidden, bias=True)]
    stages = [Stage("token_in", token_in, tokens, 1),
              Stage("llm_layer", decoder_layer(d, 1, b, (kv,)), tokens * d.layers, d.layers)]
    per = tokens // buckets
    for i in range(buckets):
        ctx = prompt + i * per + (per + 2) // 2
        att = Attention("attn", b, d.q_heads, d.kv_heads, d.head_dim, 1, ctx, causal=True)
        stages.append(Stage(f"llm_attn_{i}", [att], per * d.layers, d.layers))
    return stages + [Stage("llm_final", [Norm("final_norm", "rms", b, d.hidden)], tokens, 1)]


def _depth_stages(d: LlamaDims, x: _Depth, b: int, tokens: int) -> list[Stage]:
    e = x.embed
    depth_in = [Linear("in_mlp_2", b, d.hidden, e, bias=True),
                Linear("in_mlp_1", b * (x.codes - 1), x.code_dim, e, bias=True),
                Elementwise("pos_add", "add", b * x.codes * e)]
    stages = [Stage("depth_in", depth_in, tokens, 1),
              Stage("depth_layer", _depth_layer(x, b), tokens * x.codes * x.layers, x.layers)]
    for j in range(x.codes):
        att = Attention("attn", b, x.heads, x.heads, e // x.heads, 1, j + 1, causal=True)
        stages.append(Stage(f"depth_attn_{j}", [att], tokens * x.layers, x.layers))
    head = [Norm("ln", "layer", b, e), Linear("classifier", b, e, x.codebook, bias=True),
            Elementwise("cfg", "cfg", b // 2 * x.codebook),
            Elementwise("softmax", "softmax", b // 2 * x.codebook)]
    return stages + [Stage("depth_head", head, tokens * x.codes, 1)]


def _build(name: str, dims: tuple[LlamaDims, _Depth], tokens: int, prompt: int,
           buckets: int) -> ModelGraph:
    for key, val in (("image_tokens", tokens), ("prompt", prompt), ("buckets", buckets)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{key} must be an int >= 1, got {val!r}")
    if tokens % buckets:
        raise ValueError(f"buckets {buckets} must divide image_tokens {tokens}")
    d, x = dims
    b = 2
    stages = _llm_stages(d, x, b, tokens, prompt, buckets) + _depth_stages(d, x, b, tokens)
    desc = (f"VILA-U generation: {tokens} image tokens x (LLaMA decode, batch {b} for CFG, "
            f"+ {x.codes} depth-transformer code steps) after a {prompt}-token prompt")
    return ModelGraph(name, stages, desc, _SOURCE, {
        "image_tokens": tokens, "prompt": prompt, "buckets": buckets, "codes": x.codes,
        "batch": b})


def vila_u_generation(image_tokens: int = 256, prompt: int = 32, buckets: int = 4) -> ModelGraph:
    """VILA-U-7B generating one 256^2 image (16 x 16 tokens, D = 4 codes each) after a
    ``prompt``-token text prompt; batch 2 for classifier-free guidance."""
    return _build("vila-u", _FULL, image_tokens, prompt, buckets)


def tiny_vila_u(image_tokens: int = 16, prompt: int = 4, buckets: int = 4) -> ModelGraph:
    """VILA-U's structure: a 2-layer LLaMA of hidden 64 (4 heads of 16), a 2-layer depth
    transformer of 64 (4 heads), D = 4 codes over a 128-entry codebook, 16 image tokens."""
    return _build("tiny-vila-u", _TINY, image_tokens, prompt, buckets)
