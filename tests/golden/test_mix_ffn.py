"""Mix-FFN (GLUMBConv) float reference vs torch.nn conv layers with the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from golden.mix_ffn import MixFFNWeights, init_mix_ffn_weights, mix_ffn


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny convs: OpenMP threads only add spin-wait on a shared CPU (float64 depthwise conv went
    from ~1 ms to ~1 s under load). Restored afterwards."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def _torch_layers(w: MixFFNWeights, x: torch.Tensor) -> torch.Tensor:
    """Sana's GLUMBConv wiring with nn.Conv2d layers (image layout in and out)."""
    c, h, dt = w.channels, w.hidden, x.dtype
    inv = nn.Conv2d(c, 2 * h, 1, bias=True).to(dt)
    dw = nn.Conv2d(2 * h, 2 * h, 3, padding=1, groups=2 * h, bias=True).to(dt)
    pt = nn.Conv2d(h, c, 1, bias=w.b_point is not None).to(dt)
    with torch.no_grad():
        inv.weight.copy_(w.w_inv[:, :, None, None])
        inv.bias.copy_(w.b_inv)
        dw.weight.copy_(w.w_dw[:, None])
        dw.bias.copy_(w.b_dw)
        pt.weight.copy_(w.w_point[:, :, None, None])
        if w.b_point is not None:
            pt.bias.copy_(w.b_point)
        a, g = torch.chunk(dw(nn.functional.silu(inv(x))), 2, dim=1)
        return pt(a * nn.functional.silu(g))


@pytest.mark.parametrize("point_bias", [False, True])
def test_matches_torch_layers(point_bias: bool) -> None:
    w = init_mix_ffn_weights(8, seed=1, point_bias=point_bias, dtype=torch.float64)
    assert w.hidden == 20  # ratio 2.5
    x = torch.randn(2, 8, 5, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    got = mix_ffn(x, w)
    assert got.dtype == torch.float64 and got.shape == (2, 8, 5, 7)
    torch.testing.assert_close(got, _torch_layers(w, x), rtol=1e-12, atol=1e-12)


def test_float32_and_token_layout() -> None:
    """fp32 agrees with nn layers to 1e-5; tokens (B, N, C) in row-major (h, w) order."""
    w = init_mix_ffn_weights(16, seed=3)
    x = torch.randn(1, 16, 4, 6, generator=torch.Generator().manual_seed(4))
    img = mix_ffn(x, w)
    torch.testing.assert_close(img, _torch_layers(w, x), rtol=1e-5, atol=1e-5)
    tokens = x.permute(0, 2, 3, 1).reshape(1, 24, 16)
    out_tok = mix_ffn(tokens, w, hw=(4, 6))
    assert out_tok.shape == (1, 24, 16)
    torch.testing.assert_close(out_tok, img.permute(0, 2, 3, 1).reshape(1, 24, 16))
    sq = torch.randn(1, 9, 16, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(mix_ffn(sq, w), mix_ffn(sq, w, hw=(3, 3)))


def test_numpy_in_numpy_out_and_seeded_init() -> None:
    w = init_mix_ffn_weights(4, hidden=6, seed=7)
    assert w.w_inv.shape == (12, 4) and w.w_point.shape == (4, 6) and w.b_point is None
    w2 = init_mix_ffn_weights(4, hidden=6, seed=7)
    for name in ("w_inv", "b_inv", "w_dw", "b_dw", "w_point"):
        assert torch.equal(getattr(w, name), getattr(w2, name))
    x = np.random.default_rng(8).standard_normal((1, 4, 3, 3)).astype(np.float32)
    out = mix_ffn(x, w)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    np.testing.assert_allclose(
        out, _torch_layers(w, torch.from_numpy(x)).numpy(), rtol=1e-5, atol=1e-6
    )


def test_bad_inputs() -> None:
    w = init_mix_ffn_weights(8, seed=0)
    with pytest.raises(ValueError, match=r"x has 7 channels but the weights expect 8"):
        mix_ffn(torch.zeros(1, 7, 4, 4), w)
    with pytest.raises(ValueError, match=r"hw \(3, 5\) does not match the 16 tokens of x"):
        mix_ffn(torch.zeros(1, 16, 8), w, hw=(3, 5))
    with pytest.raises(ValueError, match=r"hw is required for non-square token count 12"):
        mix_ffn(torch.zeros(1, 12, 8), w)
    with pytest.raises(ValueError, match=r"x must be \(B, C, h, w\) or \(B, N, C\), got shape"):
        mix_ffn(torch.zeros(16, 8), w)
    with pytest.raises(ValueError, match=r"hw must be None for 4-D x"):
        mix_ffn(torch.zeros(1, 8, 2, 2), w, hw=(2, 2))
    with pytest.raises(ValueError, match=r"x holds a non-finite value \(nan\)"):
        mix_ffn(torch.full((1, 8, 2, 2), float("nan")), w)
    with pytest.raises(ValueError, match=r"w_dw must have shape \(40, 3, 3\), got \(40, 5, 5\)"):
        MixFFNWeights(w.w_inv, w.b_inv, torch.zeros(40, 5, 5), w.b_dw, w.w_point)
