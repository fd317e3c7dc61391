"""KV-cache memory accounting: full attention versus DuoAttention (batch 1).

Per token and per KV head a layer stores a key and a value of ``head_dim`` elements::

    full_bytes(T) = 2 * layers * kv_heads * head_dim * bytes_per_element * T
    duo_bytes(T)  = 2 * head_dim * bytes_per_element
                    * (R * T + (layers * kv_heads - R) * min(T, sink + recent))

with ``R = round(retrieval_fraction * layers * kv_heads)`` retrieval heads over the whole model
(DuoAttention ranks gates globally). As ``T`` grows the streaming term is constant, so
``full / duo -> 1 / retrieval_fraction``: 4x for Llama-2-7B-32K at 25% retrieval heads, 2x for
Llama-3-8B-1048k at 50%.

The paper's headline ("up to 2.55x lower memory" MHA, "1.67x" GQA) is measured total GPU
memory: fp16 weights (about 13.5 GB and 16 GB), activations and allocator slack stay the same
under both methods, so the end-to-end ratio is below the pure KV ratio. :func:`total_ratio`
adds the weights (only) to show that effect; it is an illustration, not the paper's measurement.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass

__all__ = ["CONFIGS", "CONTEXTS", "KVModelConfig", "duo_bytes", "full_bytes", "main", "ratio",
           "retrieval_heads", "total_ratio"]


@dataclass(frozen=True)
class KVModelConfig:
    """Model shape and DuoAttention deployment for KV accounting."""

    name: str
    layers: int
    kv_heads: int
    head_dim: int
    retrieval_fraction: float
    bytes_per_element: int = 2
    sink: int = 64
    recent: int = 256
    weight_params: float = 0.0

    def __post_init__(self) -> None:
        for field in ("layers", "kv_heads", "head_dim", "bytes_per_element"):
            val = getattr(self, field)
            if isinstance(val, bool) or not isinstance(val, int) or val < 1:
                raise ValueError(f"{field} must be an int >= 1, got {val!r}")
        for field in ("sink", "recent"):
            val = getattr(self, field)
            if isinstance(val, bool) or not isinstance(val, int) or val < 0:
                raise ValueError(f"{field} must be an int >= 0, got {val!r}")
        if not 0.0 < self.retrieval_fraction <= 1.0:
            raise ValueError(f"retrieval_fraction must be in (0, 1], got "
                             f"{self.retrieval_fraction!r}")


CONFIGS: dict[str, KVModelConfig] = {
    "llama-2-7b-32k": KVModelConfig("Llama-2-7B-32K (MHA)", 32, 32, 128, 0.25,
                                    weight_params=6.74e9),
    "llama-3-8b-1048k": KVModelConfig("Llama-3-8B-1048k (GQA)", 32, 8, 128, 0.50,
                                      weight_params=8.03e9),
}
CONTEXTS = (32 * 1024, 64 * 1024, 128 * 1024, 256 * 1024, 512 * 1024, 1024 * 1024)


def _tokens(tokens: int) -> int:
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
        raise ValueError(f"tokens must be an int >= 0, got {tokens!r}")
    return tokens


def retrieval_heads(cfg: KVModelConfig) -> int:
    """Number of retrieval KV heads in the whole model."""
    return int(round(cfg.retrieval_fraction * cfg.layers * cfg.kv_heads))


def full_bytes(cfg: KVModelConfig, tokens: int) -> int:
    """KV bytes with every head keeping all ``tokens``."""
    return 2 * cfg.layers * cfg.kv_heads * cfg.head_dim * cfg.bytes_per_element * _tokens(tokens)


def duo_bytes(cfg: KVModelConfig, tokens: int) -> int:
    """KV bytes with retrieval heads full and the others at ``sink + recent`` tokens."""
    t = _tokens(tokens)
    r = retrieval_heads(cfg)
    s = cfg.layers * cfg.kv_heads - r
    return 2 * cfg.head_dim * cfg.bytes_per_element * (r * t + s * min(t, cfg.sink + cfg.recent))


def ratio(cfg: KVModelConfig, tokens: int) -> float:
    """``full_bytes / duo_bytes`` (-> ``1 / retrieval_fraction`` as ``tokens`` grows; 1 at 0)."""
    duo = duo_bytes(cfg, tokens)
    return full_bytes(cfg, tokens) / duo if duo else 1.0


def total_ratio(cfg: KVModelConfig, tokens: int) -> float:
    """Like :func:`ratio` with fp16 weights added to both sides (weights + KV only)."""
    w = 2.0 * cfg.weight_params
    return (w + full_bytes(cfg, tokens)) / (w + duo_bytes(cfg, tokens))


def _table() -> list[dict]:
    rows = []
    for key, cfg in CONFIGS.items():
        for t in CONTEXTS:
            rows.append({"model": key, "tokens": t, "full_gib": full_bytes(cfg, t) / 2**30,
                         "duo_gib": duo_bytes(cfg, t) / 2**30, "kv_ratio": ratio(cfg, t),
                         "with_weights_ratio": total_ratio(cfg, t)})
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the full/duo KV table for the built-in configs, then one JSON line."""
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args(argv)
    rows = _table()
    for key, cfg in CONFIGS.items():
        print(f"{cfg.name}: {retrieval_heads(cfg)}/{cfg.layers * cfg.kv_heads} retrieval heads, "
              f"sink {cfg.sink} + recent {cfg.recent}, {8 * cfg.bytes_per_element}-bit KV; "
              f"limit 1/fraction = {1 / cfg.retrieval_fraction:.2f}x")
        print(f"  {'tokens':>8} {'full GiB':>10} {'duo GiB':>10} {'KV ratio':>9} "
              f"{'+weights':>9}")
        for r in rows:
            if r["model"] == key:
                print(f"  {r['tokens']:>8} {r['full_gib']:>10.2f} {r['duo_gib']:>10.2f} "
                      f"{r['kv_ratio']:>8.2f}x {r['with_weights_ratio']:>8.2f}x")
    print("paper headline (total GPU memory): up to 2.55x (MHA), 1.67x (GQA)")
    print(json.dumps({"configs": {k: asdict(c) for k, c in CONFIGS.items()}, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
