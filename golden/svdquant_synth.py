"""Seeded synthetic linear layers with activation outliers, for SVDQuant tests and benchmarks.

Activations: per-channel log-normal scales, and ``outliers`` channels scaled by
``outlier_scale * U(0.5, 1.5)`` (the heavy channels that break plain W4A4). Weights:
``G / sqrt(K)`` plus a low-rank part with geometrically decaying singular values, so the smoothed
weight has both the migrated outlier columns and a spectrum for the SVD branch to absorb.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["OutlierLayer", "outlier_layer"]


@dataclass(frozen=True, eq=False)
class OutlierLayer:
    """``weight`` (N, K), ``calib_x`` and ``test_x`` (tokens, K), all float32;
    ``outlier_channels`` (outliers,) int64, sorted."""

    weight: np.ndarray
    calib_x: np.ndarray
    test_x: np.ndarray
    outlier_channels: np.ndarray


def outlier_layer(
    n: int,
    k: int,
    tokens: int,
    *,
    seed: int = 0,
    outliers: int = 8,
    outlier_scale: float = 40.0,
    weight_rank: int = 16,
    weight_rank_gain: float = 1.0,
) -> OutlierLayer:
    """A reproducible layer: the same arguments give bit-identical arrays."""
    for name, v, lo in (("n", n, 1), ("k", k, 1), ("tokens", tokens, 1), ("outliers", outliers, 0),
                        ("weight_rank", weight_rank, 0)):
        if not isinstance(v, int) or v < lo:
            raise ValueError(f"{name}={v!r} must be an int >= {lo}")
    if outliers > k:
        raise ValueError(f"outliers={outliers} exceeds k={k}")
    rng = np.random.default_rng(seed)
    ch = np.exp(rng.normal(0.0, 0.5, k))
    out = np.sort(rng.choice(k, outliers, replace=False))
    ch[out] *= outlier_scale * rng.uniform(0.5, 1.5, outliers)
    x = rng.standard_normal((2 * tokens, k)) * ch
    w = rng.standard_normal((n, k)) / np.sqrt(k)
    if weight_rank:
        u = rng.standard_normal((n, weight_rank))
        v = rng.standard_normal((weight_rank, k))
        s = weight_rank_gain * 2.0 ** -np.arange(weight_rank)
        w = w + (u * s) @ v / np.sqrt(k)
    f32 = np.float32
    return OutlierLayer(w.astype(f32), x[:tokens].astype(f32), x[tokens:].astype(f32),
                        out.astype(np.int64))
