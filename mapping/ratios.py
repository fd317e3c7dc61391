"""The seed papers' headline ratios, computed from the IR's byte and MAC counts (none typed in).

* :func:`flux_weight_ratio`: FLUX.1-dev transformer weights, 16-bit vs SVDQuant (paper: 3.6x
  smaller model, 3.5x less memory for the whole 12B model).
* :func:`duo_kv_ratio` / :func:`duo_context_for_ratio`: DuoAttention KV-cache memory vs full
  attention, alone and with the 16-bit weights (paper: up to 2.55x MHA / 1.67x GQA, measured
  total GPU memory).
* :func:`sana_attention_growth`: LiteLA vs softmax self-attention MACs from 1024 to 4096 px.
* :func:`svdquant_fusion_traffic`: an SVDQuant layer's DRAM bytes and cycles on an accelerator
  with its low-rank branch fused on chip against the branch in its own pass
  (:func:`mapping.decompose.unfused_branch`).
"""

from __future__ import annotations

from .ir import Attention, LinearAttention
from .zoo import model

__all__ = ["duo_context_for_ratio", "duo_kv_ratio", "flux_weight_ratio",
           "sana_attention_growth", "svdquant_fusion_traffic"]


def flux_weight_ratio(quant: str = "svdquant", modulation: str = "w4a16",
                      resolution: int = 1024) -> dict[str, float]:
    """``bf16_bytes / quant_bytes`` of the FLUX.1-dev transformer's weights (each counted once)."""
    bf16 = model("flux1-dev", quant="bf16", resolution=resolution).totals().weight_bytes
    quantized = model("flux1-dev", quant=quant, modulation=modulation,
                      resolution=resolution).totals().weight_bytes
    return {"bf16_bytes": bf16, "quant_bytes": quantized, "ratio": bf16 / quantized}


def duo_kv_ratio(name: str = "llama3-8b-duo", context: int = 32768,
                 phase: str = "decode") -> dict[str, float]:
    """KV cache of full attention over DuoAttention's at ``context`` (``kv_ratio``), and the
    same with the 16-bit weights added to both sides (``total_ratio``)."""
    duo = model(name, phase=phase, context=context).totals()
    full = model(name, phase=phase, context=context, full=True).totals()
    return {"full_kv_bytes": full.kv_cache_bytes, "duo_kv_bytes": duo.kv_cache_bytes,
            "weight_bytes": duo.weight_bytes,
            "kv_ratio": full.kv_cache_bytes / duo.kv_cache_bytes,
            "total_ratio": (full.kv_cache_bytes + full.weight_bytes)
            / (duo.kv_cache_bytes + duo.weight_bytes)}


def duo_context_for_ratio(name: str, target: float, high: int = 1 << 24) -> int:
    """Smallest decode context at which ``total_ratio`` (weights + KV) reaches ``target``
    (bisection; it grows with the context). ``ValueError`` if not reached by ``high``."""
    if duo_kv_ratio(name, high)["total_ratio"] < target:
        raise ValueError(f"{name}: total ratio stays below {target} up to context {high}")
    low = 1
    while low < high:
        mid = (low + high) // 2
        if duo_kv_ratio(name, mid)["total_ratio"] >= target:
            high = mid
        else:
            low = mid + 1
    return low


def sana_attention_growth(size: str = "1.6B", low: int = 1024,
                          high: int = 4096) -> dict[str, float]:
    """Self-attention MACs of one Sana block at ``low`` and ``high`` px: its LiteLA (linear in
    tokens) against softmax attention with the same heads (quadratic), plus the whole model."""
    name = f"sana-{size.lower()}"
    out: dict[str, float] = {}
    for tag, res in (("low", low), ("high", high)):
        graph = model(name, resolution=res)
        lite = graph.op("block.lite_la")
        assert isinstance(lite, LinearAttention)
        soft = Attention("softmax", lite.batch, lite.heads, lite.heads, lite.head_dim,
                         lite.tokens, lite.tokens)
        out[f"tokens_{tag}"] = lite.tokens
        out[f"linear_macs_{tag}"] = lite.macs
        out[f"softmax_macs_{tag}"] = soft.macs
        out[f"model_macs_{tag}"] = graph.totals().macs
    out["token_growth"] = out["tokens_high"] / out["tokens_low"]
    for key in ("linear", "softmax", "model"):
        out[f"{key}_growth"] = out[f"{key}_macs_high"] / out[f"{key}_macs_low"]
    out["softmax_over_linear_high"] = out["softmax_macs_high"] / out["linear_macs_high"]
    return out


def svdquant_fusion_traffic(arch, m: int = 4096, k: int = 3072, n: int = 3072, rank: int = 32
                            ) -> dict[str, float]:
    """DRAM bytes and cycles of FLUX.1's ``m x k x n`` SVDQuant layer (int4 codes in groups of
    64, rank ``rank``) on ``arch``: the kernel with the branch fused against the branch
    unfused; ratios unfused over fused."""
    from .accel_cost import cost_op
    from .decompose import unfused_branch
    from .ir import Linear

    op = Linear("svdquant", m, k, n, "int4_g64", "int4_g64", rank=rank)
    fused = cost_op(arch, op)
    steps = unfused_branch(arch, op)
    dram, cycles = sum(s.dram_bytes for s in steps), sum(s.cycles for s in steps)
    return {"fused_dram_bytes": fused.dram_bytes, "unfused_dram_bytes": dram,
            "dram_ratio": dram / fused.dram_bytes, "fused_cycles": fused.cycles,
            "unfused_cycles": cycles, "cycle_ratio": cycles / fused.cycles}
