"""``mapping.torch_blocks``: a LoRA attached to an SVDQuant linear joins its low-rank branch
(rank r + r_l) without touching the int4 residual; the seeded helper and the FLUX twin option."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from mapping.fx_compare import describe_difference, equivalent
from mapping.fx_import import import_module
from mapping.ir import Linear, ModelGraph
from mapping.torch_blocks import SVDQuantLinear, attach_loras
from mapping.torch_models import tiny_flux1_dev
from mapping.zoo import model as zoo_model

K, N, R = 128, 48, 32


def _layer(dtype=torch.float32, act="int4_g64") -> SVDQuantLinear:
    torch.manual_seed(1)
    return SVDQuantLinear(K, N, R, act=act, dtype=dtype)


def _lora(r: int, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(r, K, generator=g) / K ** 0.5, 0.1 * torch.randn(N, r, generator=g)


@pytest.mark.parametrize("down, up, scale, match", [
    (torch.zeros(8, K + 1), torch.zeros(N, 8), 1.0, r"LoRA down has shape \(8, 129\), expected"
                                                   r" \(r_l >= 1, K=128\)"),
    (torch.zeros(0, K), torch.zeros(N, 0), 1.0, r"LoRA down has shape \(0, 128\)"),
    (torch.zeros(K), torch.zeros(N, 8), 1.0, r"LoRA down has shape \(128,\)"),
    (torch.zeros(8, K), torch.zeros(N + 1, 8), 1.0, r"LoRA up has shape \(49, 8\), expected "
                                                    r"\(N=48, r_l=8\)"),
    (torch.zeros(8, K), torch.zeros(N, 4), 1.0, r"LoRA up has shape \(48, 4\), expected "
                                                r"\(N=48, r_l=8\)"),
    (torch.zeros(8, K, dtype=torch.int32), torch.zeros(N, 8), 1.0,
     "LoRA down must hold finite floats, got torch.int32"),
    (torch.zeros(8, K), torch.full((N, 8), float("nan")), 1.0,
     "LoRA up must hold finite floats, got torch.float32 with inf/nan"),
    (torch.zeros(8, K), torch.zeros(N, 8), float("inf"), "LoRA scale must be a finite number, "
                                                         "got inf"),
    (torch.zeros(8, K), torch.zeros(N, 8), "1", "LoRA scale must be a finite number, got '1'"),
    ([[0.0] * K], torch.zeros(N, 1), 1.0, "down and up must be tensors, got list"),
])
def test_attach_lora_rejects_bad_loras(down, up, scale, match):
    layer = _layer()
    with pytest.raises(ValueError, match=match):
        layer.attach_lora(down, up, scale)
    assert layer.lora_rank == 0 and layer.lora_down is None


def test_one_lora_at_a_time():
    layer = _layer()
    layer.attach_lora(*_lora(8))
    with pytest.raises(ValueError, match="a LoRA of rank 8 is already attached; remove_lora"):
        layer.attach_lora(*_lora(4))
    layer.remove_lora()
    assert layer.lora_rank == 0 and layer.branch_rank == R
    layer.attach_lora(*_lora(4))
    assert layer.lora_rank == 4 and layer.branch_rank == R + 4


def test_branch_is_the_svd_branch_and_the_lora_concatenated():
    """``x down'^T up'^T = x down^T up^T + s (x A^T) B^T``: float32 against float64, to
    1e-5 of the output's scale (summation order only); the blocks exact (s = 0.5 is a power
    of two)."""
    layer = _layer()
    down0, up0 = layer.branch()
    assert torch.equal(down0, layer.down.detach()) and torch.equal(up0, layer.up.detach())
    a, b = _lora(16)
    layer.attach_lora(a, b, scale=0.5)
    down, up = layer.branch()
    assert down.dtype == up.dtype == torch.float32
    assert down.shape == (R + 16, K) and up.shape == (N, R + 16)
    assert torch.equal(down[:R], down0) and torch.equal(down[R:], a)
    assert torch.equal(up[:, :R], up0) and torch.equal(up[:, R:], 0.5 * b)
    x = torch.randn(8, K, generator=torch.Generator().manual_seed(3))
    got = F.linear(F.linear(x, down), up).double()
    xd, d0, u0 = x.double(), down0.double(), up0.double()
    want = xd @ d0.T @ u0.T + 0.5 * (xd @ a.double().T) @ b.double().T
    assert torch.allclose(got, want, rtol=0, atol=1e-5 * want.abs().max().item())


@pytest.mark.parametrize("act", ["int4_g64", "uint4_g64"])
def test_forward_adds_the_lora_and_keeps_the_codes(act):
    layer = _layer(act=act)
    codes, scales = layer.qweight.clone(), layer.wscale.clone()
    keys = set(layer.state_dict())
    x = F.gelu(torch.randn(4, K, generator=torch.Generator().manual_seed(4)))
    with torch.no_grad():
        base = layer(x)
        a, b = _lora(8)
        layer.attach_lora(a, b, scale=2.0)
        got = layer(x)
    assert torch.equal(layer.qweight, codes) and torch.equal(layer.wscale, scales)
    assert set(layer.state_dict()) == keys | {"lora_down", "lora_up"}
    want = base.double() + 2.0 * (x.double() @ a.double().T) @ b.double().T
    assert torch.allclose(got.double(), want, rtol=0, atol=1e-5 * want.abs().max().item())
    assert (got - base).abs().max() > 0.05 * base.abs().max()    # the LoRA does something
    layer.remove_lora()
    with torch.no_grad():
        assert torch.equal(layer(x), base) and set(layer.state_dict()) == keys


def test_lora_is_stored_at_the_branch_dtype():
    layer = _layer(dtype=torch.bfloat16)
    a, b = _lora(8)
    layer.attach_lora(a.double(), b.double())
    assert layer.lora_down.dtype == layer.lora_up.dtype == torch.bfloat16
    assert torch.equal(layer.branch()[0][R:], a.to(torch.bfloat16).float())
    assert layer.float().lora_up.dtype == torch.float32


def test_attach_loras_is_seeded_per_path_and_leaves_the_global_rng():
    flux, _ = tiny_flux1_dev()
    state = torch.random.get_rng_state()
    paths = attach_loras(flux, 8, seed=5, scale=0.5)
    assert torch.equal(torch.random.get_rng_state(), state)
    mods = dict(flux.named_modules())
    assert len(paths) == 20 and all(mods[p].lora_rank == 8 and mods[p].lora_scale == 0.5
                                    for p in paths)
    again, _ = tiny_flux1_dev()
    attach_loras(again, 8, seed=5, scale=0.5)
    other, _ = tiny_flux1_dev()
    attach_loras(other, 8, seed=6)
    same = dict(again.named_modules())
    diff = dict(other.named_modules())
    assert all(torch.equal(mods[p].lora_down, same[p].lora_down)
               and torch.equal(mods[p].lora_up, same[p].lora_up) for p in paths)
    assert not any(torch.equal(mods[p].lora_down, diff[p].lora_down) for p in paths)
    a, b = mods["double_blocks.0.img.qkv"], mods["double_blocks.1.img.qkv"]  # same shapes
    assert a.lora_down.shape == b.lora_down.shape
    assert not torch.equal(a.lora_down, b.lora_down)
    assert attach_loras(flux, 0) == []
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="LoRA rank must be an int >= 0, got"):
            attach_loras(flux, bad)
    with pytest.raises(ValueError, match="already attached"):
        attach_loras(flux, 4)


def _with_rank(graph: ModelGraph, rank: int) -> ModelGraph:
    """``graph`` with every SVDQuant linear's rank set to ``rank``."""
    stages = tuple(replace(s, ops=tuple(replace(o, rank=rank) if isinstance(o, Linear)
                                        and o.rank else o for o in s.ops))
                   for s in graph.stages)
    return replace(graph, stages=stages)


def test_flux_twin_with_a_lora_imports_with_the_rank_added():
    """The LoRA is more rank and nothing else: the twin's import with rank-16 LoRAs is the
    zoo graph with every SVDQuant linear at rank 48; without, it is the zoo graph."""
    written = zoo_model("tiny-flux1-dev")
    module, inputs = tiny_flux1_dev(lora_rank=16)
    imported = import_module(module, inputs, name="tiny-flux1-dev")
    ranks = {o.rank for s in imported.stages for o in s.ops if isinstance(o, Linear) and o.rank}
    assert ranks == {48}
    assert not equivalent(imported, written)
    want = _with_rank(written, 48)
    assert equivalent(imported, want), describe_difference(imported, want)
    plain = import_module(*tiny_flux1_dev(), name="tiny-flux1-dev")
    assert equivalent(plain, written), describe_difference(plain, written)
