"""``flows.e2e_w4a16``: an AWQ W4A16 leaf of one group along K as a W4A8 GEMM of its int4 codes:
the accelerator's output equals golden's bit for bit, the record's cycles are the mapper's
array step's, its error within a bound that is nearly attained; leaves of several groups
rejected. Small shapes, reference engine (one call on the RTL)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from flows.e2e import _Gemms
from flows.e2e_w4a16 import w4a16_ir, w4a16_linear, w4a16_on_accelerator
from hw.front.arch import load_arch
from mapping.ir import Linear
from mapping.mapper import map_op
from mapping.torch_blocks import W4A16Linear, dequantize

FUSED = load_arch("examples/arch/lego_fused.yaml")
GEMMINI = load_arch("examples/arch/gemmini_like.yaml")
ARCHS = [pytest.param(FUSED, id="lego_fused"), pytest.param(GEMMINI, id="gemmini_like")]


def _leaf(seed: int = 0, k: int = 64, n: int = 192) -> W4A16Linear:
    """A float32 leaf with seeded weights and a nonzero bias."""
    torch.manual_seed(seed)
    mod = W4A16Linear(k, n, dtype=torch.float32)
    with torch.no_grad():
        mod.bias.normal_()
    return mod


def _both(mod: W4A16Linear, x: torch.Tensor, arch, engine: str = "ref"):
    """(accelerator output, its gemms, golden output)."""
    acc, gold = _Gemms(arch, engine), _Gemms(arch, None)
    y = w4a16_linear(torch, mod, x, acc, "blk.mod#1")
    return y, acc, w4a16_linear(torch, mod, x, gold, "blk.mod#1")


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("rows", [1, 3])
def test_bit_exact_cycles_and_bound(arch, rows: int) -> None:
    mod = _leaf(rows)
    x = torch.randn(rows, 64)
    y, acc, gold = _both(mod, x, arch)
    assert y.shape == (rows, 192) and y.dtype == x.dtype
    assert torch.equal(y, gold)
    (rec,) = acc.records
    assert rec.bit_exact and rec.shape == (rows, 64, 192) and rec.rtl_cycles is None
    assert rec.model_cycles == rec.mapper_cycles and rec.cycles_match
    assert 0 < rec.err <= rec.err_bound < 10 * rec.err
    ref = mod(x).detach()
    diff = (y - ref).abs().double()
    # the record's error is one element's (the one nearest its bound), at most the largest
    assert rec.err <= float(diff.max()) * (1 + 1e-4)
    assert bool(torch.isclose(diff, torch.tensor(rec.err, dtype=diff.dtype), rtol=1e-4).any())
    assert float((y - ref).abs().max()) < 0.05 * float(ref.abs().max())


@pytest.mark.parametrize("arch", ARCHS)
def test_mapper_cost_is_array_step_plus_host_rescale(arch) -> None:
    """The mapper's choice for the importer's op is group_partials: the record's array step
    (the same GEMM as the plain int8 linear's) plus the host's rescale."""
    mod, x = _leaf(), torch.randn(3, 64)
    _, acc, _ = _both(mod, x, arch)
    (rec,) = acc.records
    op = w4a16_ir("blk.mod#1", mod, x)
    assert (op.act_fmt.name, op.weight_fmt.name, op.out_fmt.name, op.bias) == (
        "fp32", "int4_awq_g64", "fp32", True)
    choice = map_op(arch, op)
    assert choice.label == "group_partials"
    gemm, host = choice.steps
    assert (gemm.target, host.target) == ("accel", "host")
    assert rec.mapper_cycles == gemm.cycles and choice.cycles == gemm.cycles + host.cycles
    plain = map_op(arch, Linear("x", 3, 64, 192, "int8", "int8")).steps[0]
    assert (plain.cycles, plain.dataflow, plain.schedule) == (
        gemm.cycles, gemm.dataflow, gemm.schedule)
    assert rec.dataflow == gemm.dataflow and rec.dram_bytes == gemm.dram_bytes


def test_bound_nearly_attained() -> None:
    """Activations half a step (less a bit) off their codes, signed as output 0's weights:
    every term of the activation bound is met at output 0, so the error is over 90% of it."""
    mod = _leaf(5)
    w0 = dequantize(mod.qweight, mod.scales, mod.zeros)[0].double()
    gen = torch.Generator().manual_seed(1)
    codes = torch.randint(-100, 101, (64,), generator=gen).double()
    a = (codes + 0.49 * torch.sign(w0)) / 128
    a[0] = 127 / 128                                 # s_a = 1/128, code 127 exact
    _, acc, _ = _both(mod, a.float()[None, :], FUSED)
    (rec,) = acc.records
    assert 0.9 * rec.err_bound < rec.err <= rec.err_bound


def test_exact_activations_leave_rounding_terms() -> None:
    """Activations exactly their codes times s_a (a power of two): no activation rounding, so
    every element's error is within the bound's float32 terms alone, ``3 u sum_k |a| |w| + 4 u
    |p| + u |b|`` (``p = y - b`` to first order; factor 1.01 for second-order terms)."""
    mod = _leaf(7)
    gen = torch.Generator().manual_seed(2)
    codes = torch.randint(-127, 128, (4, 64), generator=gen).double()
    codes[:, 0] = 127
    a = codes / 256
    y, acc, _ = _both(mod, a.float(), GEMMINI)
    (rec,) = acc.records
    w = dequantize(mod.qweight, mod.scales, mod.zeros).double()
    b = mod.bias.detach().double()
    exact = a @ w.T + b
    u = 2.0 ** -24
    rounding = 1.01 * (3 * u * a.abs() @ w.abs().T + 4 * u * (exact - b).abs() + u * b.abs())
    err = (y.double() - exact).abs()
    assert bool((err <= rounding).all()) and 0 < rec.err <= rec.err_bound
    assert rec.err <= float(err.max()) * (1 + 1e-6)


def test_rtl_cycles_match() -> None:
    mod = _leaf(3)
    y, acc, gold = _both(mod, torch.randn(3, 64), FUSED, engine="fast")
    (rec,) = acc.records
    assert torch.equal(y, gold) and rec.bit_exact
    assert rec.rtl_cycles == rec.model_cycles == rec.mapper_cycles


def test_batched_input_shape() -> None:
    mod = _leaf(4)
    x = torch.randn(2, 3, 64)
    y, acc, gold = _both(mod, x, GEMMINI)
    assert y.shape == (2, 3, 192) and torch.equal(y, gold)
    assert acc.records[0].shape == (6, 64, 192)


@pytest.mark.parametrize("arch", ARCHS)
def test_rejects_two_groups_and_other_modules(arch) -> None:
    wide = _leaf(k=128)
    assert not w4a16_on_accelerator(wide, arch)
    assert not w4a16_on_accelerator(torch.nn.Linear(64, 8), arch)
    assert w4a16_on_accelerator(_leaf(), arch)
    with pytest.raises(ValueError, match="in_features 128"):
        w4a16_linear(torch, wide, torch.randn(1, 128), _Gemms(arch, None), "blk.wide#1")
    with pytest.raises(ValueError, match="in_features 128"):
        w4a16_linear(torch, wide, torch.randn(1, 128), _Gemms(arch, "ref"), "blk.wide#1")
    assert np.isfinite(w4a16_linear(torch, _leaf(), torch.randn(1, 64), _Gemms(arch, None),
                                    "blk.mod#1").numpy()).all()
