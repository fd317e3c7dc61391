"""sw.svdquant (Triton, interpreted on a CPU; and the torch backend) against golden.

Tolerances (u = 2**-24, the float32 unit roundoff):

* int4 codes, int4 scales, the int4 GEMM (``fma=False`` order), NVFP4 codes / E4M3 scales /
  tensor scale / GEMM: bit-exact (``assert_array_equal``).
* ``lora_act``: ours is ``x . fl32(down / smooth)^T``, golden ``fl32(x / smooth) . down^T``, two
  K-term float32 dots in unspecified orders, so ``|ours - golden| <= 2 (K + 2) u T1`` with
  ``T1 = |x / smooth| . |down|^T`` (the standard dot-product bound, for each side).
* the GEMM epilogue ``fl32(fl32(G + la . up^T) + b)`` against float64 ``G + la . up^T + b``
  (G the exact golden GEMM): ``<= u ((r + 2) T2 + 2 (|G| + T2 + |b|))``, ``T2 = |la| . |up|^T``.
* ``w4a4_linear`` against ``layer(x)``: the quantized path is bit-exact, only the branch differs:
  ``<= u (2 (K + 2) T1 @ |up|^T + 2 (r + 2) T2 + 4 (|y| + |b|))``.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import sw.svdquant_kernels as K
from golden.nvfp4 import nvfp4_gemm, quantize_nvfp4
from golden.svdquant import GELU_SHIFT, quantize_linear
from golden.svdquant_ops import quantize_int4, w4a4_gemm
from sw.svdquant import (
    nvfp4_gemm_lora,
    pack_int4,
    quantize_act,
    quantize_act_nvfp4,
    unpack_int4,
    w4a4_gemm_lora,
    w4a4_linear,
)

U = 2.0**-24
BACKENDS = ["triton", "torch"]


def _acts(m, k, r, seed, unsigned=False):
    """x (M, K) with outlier channels, smooth (K,) > 0, lora_down (r, K): float32 tensors."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g) * 2
    x[:, :: max(1, k // 5)] *= 40                                # activation outliers
    if unsigned:
        x = torch.nn.functional.gelu(x)
    smooth = torch.rand(k, generator=g) * 4 + 0.25
    down = torch.randn(r, k, generator=g) / 8
    return x, smooth, down


def _weights(n, k, r, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(n, k, generator=g)
    return w, torch.randn(n, r, generator=g) / 8, torch.randn(n, generator=g)


def _lora_bound(x, smooth, down):
    xh = np.abs(x.double().numpy() / smooth.double().numpy())
    return 2 * (x.shape[1] + 2) * U * (xh @ np.abs(down.double().numpy()).T)


class TestPack:
    @settings(max_examples=40, deadline=None)
    @given(st.integers(1, 5), st.integers(1, 20), st.booleans(), st.integers(0, 2**31))
    def test_round_trip(self, rows, half, signed, seed):
        g = torch.Generator().manual_seed(seed)
        lo, hi, dt = (-8, 8, torch.int8) if signed else (0, 16, torch.uint8)
        c = torch.randint(lo, hi, (rows, 2 * half), generator=g).to(dt)
        p = pack_int4(c)
        assert p.dtype == torch.uint8 and tuple(p.shape) == (rows, half)
        assert torch.equal(unpack_int4(p, signed=signed), c)

    def test_nibble_order_low_is_even(self):
        p = pack_int4(torch.tensor([[1, -2, -8, 7]], dtype=torch.int8))
        assert p.tolist() == [[0xE1, 0x78]]
        assert pack_int4(torch.tensor([15, 3], dtype=torch.uint8)).tolist() == [0x3F]

    def test_bad(self):
        with pytest.raises(ValueError, match="codes holds 16, outside -8..15"):
            pack_int4(torch.tensor([16, 0], dtype=torch.int8))
        with pytest.raises(ValueError, match="codes holds -9, outside -8..15"):
            pack_int4(torch.tensor([-9, 0], dtype=torch.int8))
        with pytest.raises(ValueError, match="even last dimension"):
            pack_int4(torch.zeros(3, dtype=torch.int8))
        with pytest.raises(ValueError, match="codes must be int8 or uint8, got torch.int32"):
            pack_int4(torch.zeros(2, dtype=torch.int32))
        with pytest.raises(ValueError, match="packed must be uint8"):
            unpack_int4(torch.zeros(2, dtype=torch.int8))


class TestQuantizeAct:
    @pytest.mark.parametrize("m,k,r", [(1, 64, 16), (70, 192, 32), (130, 128, 16), (5, 64, 0)])
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_matches_golden(self, m, k, r, backend):
        x, smooth, down = _acts(m, k, r, seed=m + k + r)
        codes, scales, la = quantize_act(x, smooth, down, backend=backend)
        u = x.numpy() / smooth.numpy()                              # fl32(x / smooth), as golden
        q_ref, s_ref = quantize_int4(u, 64)
        assert codes.shape == (m, k // 2) and scales.shape == (m, k // 64) and la.shape == (m, r)
        np.testing.assert_array_equal(unpack_int4(codes).numpy(), q_ref)   # bit-exact
        np.testing.assert_array_equal(scales.numpy(), s_ref)               # bit-exact
        err = np.abs(la.numpy().astype(np.float64) - u @ down.numpy().T)
        assert (err <= _lora_bound(x, smooth, down)).all()

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_ties_zeros_subnormals(self, backend):
        """Rows hitting exact .5 ties (absmax 7 -> s = 1), an all-zero row (s = 1), a row of
        subnormal values (subnormal s, code -8 possible) and negative zeros: bit-exact."""
        ties = torch.arange(64, dtype=torch.float32) % 15 - 7 + 0.5
        ties[0] = 7.0
        x = torch.stack([ties, -ties, torch.zeros(64), torch.full((64,), -0.0),
                         torch.linspace(-1, 1, 64) * 2.0**-140, torch.linspace(-1, 1, 64) * 3e38])
        smooth = torch.ones(64)
        codes, scales, _ = quantize_act(x, smooth, torch.zeros(16, 64), backend=backend)
        q_ref, s_ref = quantize_int4(x.numpy(), 64)
        np.testing.assert_array_equal(unpack_int4(codes).numpy(), q_ref)
        np.testing.assert_array_equal(scales.numpy(), s_ref)

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_unsigned(self, backend):
        x, smooth, down = _acts(40, 128, 32, seed=3, unsigned=True)
        codes, scales, la = quantize_act(x, smooth, down, backend=backend, act_unsigned=True)
        xs = (x.numpy() + np.float32(GELU_SHIFT)) / smooth.numpy()
        q_ref, s_ref = quantize_int4(xs, 64, signed=False)
        np.testing.assert_array_equal(unpack_int4(codes, signed=False).numpy(), q_ref)
        np.testing.assert_array_equal(scales.numpy(), s_ref)
        err = np.abs(la.numpy() - (x.numpy() / smooth.numpy()) @ down.numpy().T)
        assert (err <= _lora_bound(x, smooth, down)).all()


def _int4_operands(m, k, n, r, seed, unsigned=False):
    x, smooth, down = _acts(m, k, r, seed, unsigned)
    xs = ((x.numpy() + np.float32(GELU_SHIFT)) if unsigned else x.numpy()) / smooth.numpy()
    qx, sx = quantize_int4(xs, 64, signed=not unsigned)
    w, up, bias = _weights(n, k, r, seed + 1)
    qw, sw = quantize_int4(w.numpy(), 64)
    la = torch.randn(m, r, generator=torch.Generator().manual_seed(seed + 2)) * 10
    return qx, sx, qw, sw, la, up, bias


def _gemm_args(qx, sx, qw, sw, la, up, bias):
    return (pack_int4(torch.from_numpy(qx)), torch.from_numpy(sx), pack_int4(torch.from_numpy(qw)),
            torch.from_numpy(sw), la, up, bias)


class TestW4A4GemmLora:
    SHAPES = [(1, 64, 1, 16), (70, 192, 90, 32), (130, 128, 65, 16)]

    @pytest.mark.parametrize("m,k,n,r", SHAPES)
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_int4_part_bit_exact(self, m, k, n, r, backend):
        """lora_act = 0: y is golden w4a4_gemm(fma=False) + bias, bit for bit."""
        qx, sx, qw, sw, la, up, bias = _int4_operands(m, k, n, r, seed=m + n)
        y = w4a4_gemm_lora(*_gemm_args(qx, sx, qw, sw, torch.zeros_like(la), up, bias),
                           backend=backend)
        assert y.dtype == torch.float32 and tuple(y.shape) == (m, n)
        np.testing.assert_array_equal(y.numpy(), w4a4_gemm(qx, sx, qw, sw, 64) + bias.numpy())

    @pytest.mark.parametrize("m,k,n,r", SHAPES)
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_with_lora_and_bias(self, m, k, n, r, backend):
        qx, sx, qw, sw, la, up, bias = _int4_operands(m, k, n, r, seed=m + n + 1)
        y = w4a4_gemm_lora(*_gemm_args(qx, sx, qw, sw, la, up, bias), backend=backend)
        g = w4a4_gemm(qx, sx, qw, sw, 64).astype(np.float64)
        low = la.double().numpy() @ up.double().numpy().T
        t2 = np.abs(la.double().numpy()) @ np.abs(up.double().numpy()).T
        b = bias.double().numpy()
        tol = U * ((r + 2) * t2 + 2 * (np.abs(g) + t2 + np.abs(b)))
        assert (np.abs(y.numpy() - (g + low + b)) <= tol).all()

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_unsigned_no_bias_rank0(self, backend):
        qx, sx, qw, sw, _, _, _ = _int4_operands(33, 128, 20, 16, seed=5, unsigned=True)
        args = _gemm_args(qx, sx, qw, sw, torch.zeros(33, 0), torch.zeros(20, 0), None)
        y = w4a4_gemm_lora(*args, backend=backend, act_unsigned=True)
        np.testing.assert_array_equal(y.numpy(), w4a4_gemm(qx, sx, qw, sw, act_signed=False))


class TestStrided:
    def test_non_contiguous_inputs(self):
        """Transposed / sliced views give the same bits as contiguous copies."""
        x, smooth, down = _acts(40, 128, 16, seed=8)
        xt = x.t().contiguous().t()
        s2 = torch.stack([smooth, smooth], dim=1)[:, 0]
        ref = quantize_act(x, smooth, down)
        for a, b in zip(quantize_act(xt, s2, down.t().contiguous().t()), ref, strict=True):
            assert torch.equal(a, b)
        for f in (quantize_act, quantize_act_nvfp4):
            assert torch.equal(f(xt, s2, down)[0], f(x, smooth, down)[0])
        qx, sx, qw, sw, la, up, bias = _gemm_args(*_int4_operands(40, 128, 30, 16, seed=9))
        views = [t.t().contiguous().t() for t in (qx, sx, qw, sw, la, up)]
        y = w4a4_gemm_lora(*views, torch.stack([bias, bias], 1)[:, 1])
        assert torch.equal(y, w4a4_gemm_lora(qx, sx, qw, sw, la, up, bias))


class TestNVFP4:
    @pytest.mark.parametrize("m,k,r", [(1, 16, 16), (37, 96, 32)])
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_quantize_matches_golden(self, m, k, r, backend):
        x, smooth, down = _acts(m, k, r, seed=m + k)
        codes, scales, t, la = quantize_act_nvfp4(x, smooth, down, backend=backend)
        u = x.numpy() / smooth.numpy()
        ref = quantize_nvfp4(u)
        assert t == ref.global_scale
        np.testing.assert_array_equal(unpack_int4(codes, signed=False).numpy(), ref.codes)
        np.testing.assert_array_equal(scales.numpy(), ref.scales.astype(np.float32))
        assert (np.abs(la.numpy() - u @ down.numpy().T) <= _lora_bound(x, smooth, down)).all()

    @pytest.mark.parametrize("backend", BACKENDS)
    def test_rounding_edges(self, backend):
        """E2M1 midpoints (ties to the even code), -0 and small negatives (sign kept), E4M3
        scale ties, subnormal scales, zero scales and saturation at 448: bit-exact."""
        mids = [0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0, 6.0]
        row0 = mids + [-m for m in mids]                         # amax 6, t = 1: eff = 1
        row1 = [-0.0, -0.1, 0.1, 0.0] + [6.0] + [0.0] * 11
        rows = [row0, row1] + [[a * 6.0] + [a * 3.1] * 15 for a in
                               (1.0625, 1.1875, 2.5 * 2.0**-9, 1.5 * 2.0**-9, 2.0**-12, 1e-38,
                                500.0, 1000.0)]
        x = torch.tensor(rows, dtype=torch.float32)
        codes, scales, t, _ = quantize_act_nvfp4(x, torch.ones(16), torch.zeros(0, 16),
                                                 global_scale=1.0, backend=backend)
        ref = quantize_nvfp4(x.numpy(), global_scale=1.0)
        np.testing.assert_array_equal(unpack_int4(codes, signed=False).numpy(), ref.codes)
        np.testing.assert_array_equal(scales.numpy(), ref.scales.astype(np.float32))

    @pytest.mark.parametrize("m,k,n,r", [(1, 32, 3, 16), (37, 96, 70, 32)])
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_gemm_matches_golden(self, m, k, n, r, backend):
        x, smooth, _ = _acts(m, k, r, seed=m)
        w, up, bias = _weights(n, k, r, seed=n)
        a, b = quantize_nvfp4(x.numpy() / smooth.numpy()), quantize_nvfp4(w.numpy())
        la = torch.randn(m, r, generator=torch.Generator().manual_seed(m + n)) * 10
        args = (pack_int4(torch.from_numpy(a.codes)), torch.from_numpy(a.scales.astype(np.float32)),
                a.global_scale, pack_int4(torch.from_numpy(b.codes)),
                torch.from_numpy(b.scales.astype(np.float32)), b.global_scale)
        y = nvfp4_gemm_lora(*args, torch.zeros(m, r), up, None, backend=backend)
        np.testing.assert_array_equal(y.numpy(), nvfp4_gemm(a, b))           # bit-exact
        y = nvfp4_gemm_lora(*args, la, up, bias, backend=backend)
        g = nvfp4_gemm(a, b).astype(np.float64)
        t2 = np.abs(la.double().numpy()) @ np.abs(up.double().numpy()).T
        ref = g + la.double().numpy() @ up.double().numpy().T + bias.double().numpy()
        tol = U * ((r + 2) * t2 + 2 * (np.abs(g) + t2 + np.abs(bias.double().numpy())))
        assert (np.abs(y.numpy() - ref) <= tol).all()


LAYERS = {
    "int4_r32": dict(rank=32, alpha=0.5),
    "int4_r16_bias": dict(rank=16, alpha=0.5, bias=True),
    "int4_r20_padded": dict(rank=20, alpha=0.3, bias=True),
    "int4_unsigned": dict(rank=32, alpha=0.5, act_unsigned=True, bias=True),
    "int4_naive": dict(method="naive"),
    "nvfp4_r32": dict(rank=32, alpha=0.5, fmt="nvfp4", bias=True),
}


class TestW4A4Linear:
    @pytest.mark.parametrize("name", list(LAYERS))
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_matches_layer(self, name, backend):
        kw = dict(LAYERS[name])
        n, k = 72, 128
        x, _, _ = _acts(2 * 23, k, 0, seed=11, unsigned=kw.get("act_unsigned", False))
        w, _, bias = _weights(n, k, 0, seed=12)
        layer = quantize_linear(w.numpy(), x.numpy(), bias=bias.numpy() if kw.pop("bias", 0)
                                else None, **kw)
        x3 = x.reshape(2, 23, k)                                 # leading dims, as golden takes
        y = w4a4_linear(x3, layer, backend=backend)
        y_ref = layer(x3.numpy()).astype(np.float64)
        assert tuple(y.shape) == (2, 23, n)
        x2, xs = x.double().numpy(), layer.smooth.astype(np.float64)
        up, down = np.abs(layer.lora_up.astype(np.float64)), np.abs(layer.lora_down)
        t1 = (np.abs(x2 / xs) @ down.T) @ up.T
        t2 = np.abs(x2 / xs @ layer.lora_down.T.astype(np.float64)) @ up.T
        b = np.abs(layer.epilogue_bias.astype(np.float64))
        r = -layer.rank % 16 + layer.rank
        tol = U * (2 * (k + 2) * t1 + 2 * (r + 2) * t2 + 4 * (np.abs(y_ref).reshape(-1, n) + b))
        assert (np.abs(y.numpy().reshape(-1, n) - y_ref.reshape(-1, n)) <= tol).all()


class _Boom:
    """Stands in for a kernel: indexing it (a launch) fails the test."""

    def __getitem__(self, grid):
        raise AssertionError("kernel launched despite bad input")


@pytest.fixture
def no_launch(monkeypatch):
    for name in ("quant_int4_kernel", "quant_nvfp4_kernel", "w4a4_kernel", "nvfp4_kernel"):
        monkeypatch.setattr(K, name, _Boom())


def _bad_cases():
    x, s, d = torch.zeros(4, 128), torch.ones(128), torch.zeros(16, 128)
    nan_x = x.clone()
    nan_x[2, 5] = float("nan")
    inf_x = x.clone()
    inf_x[1, 0] = -float("inf")
    big = torch.full((4, 128), 3e38)
    cx, sx = torch.zeros(4, 64, dtype=torch.uint8), torch.ones(4, 2)
    cw, sw = torch.zeros(3, 64, dtype=torch.uint8), torch.ones(3, 2)
    la, up, b = torch.zeros(4, 16), torch.zeros(3, 16), torch.zeros(3)
    g = (cx, sx, cw, sw, la, up, b)
    sx_inf = sx.clone()
    sx_inf[0, 1] = float("inf")
    meta = torch.zeros(16, 128, device="meta")
    q = quantize_act
    return [
        (lambda: q(x.double(), s, d), "x must be torch.float32, got torch.float64"),
        (lambda: q(x[0], s, d), r"x must have shape \(\*, \*\), got \(128,\)"),
        (lambda: q(x[:, :100], s[:100], d[:, :100]), "K=100 .* not divisible by group_size=64"),
        (lambda: q(x, s, d, 128), "group_size must be 64 .* got 128"),
        (lambda: q(x, s, d, 64.0), "group_size must be 64 .* got 64.0"),
        (lambda: q(x, s[:64], d), r"smooth must have shape \(128,\), got \(64,\)"),
        (lambda: q(x, -s, d), "smooth holds -1.0 at index 0; must be > 0"),
        (lambda: q(x, s, d[:8]), "lora_down has LoRA rank 8, not a multiple of 16"),
        (lambda: q(x, s, d[:, :64]), r"lora_down must have shape \(\*, 128\)"),
        (lambda: q(x, s, d.half()), "lora_down must be torch.float32"),
        (lambda: q(nan_x, s, d), r"x holds nan at index \(2, 5\)"),
        (lambda: q(inf_x, s, d), r"x holds -inf at index \(1, 0\)"),
        (lambda: q(big, s * 1e-3, d), "x / smooth overflows float32 in column 0"),
        (lambda: q(x - 1, s, d, act_unsigned=True), "x holds -1.0 < -0.171875"),
        (lambda: q(x, s, meta), "tensors on different devices"),
        (lambda: q(x, s, d, backend="cuda"), "backend must be one of"),
        (lambda: q(x, s, d, block_m=24), "block_m must be a power of two >= 16, got 24"),
        (lambda: q(x.tolist(), s, d), "x must be a numpy array or a torch tensor, got list"),
        (lambda: w4a4_gemm_lora(cx.to(torch.int8), *g[1:]), "codes_x must be torch.uint8"),
        (lambda: w4a4_gemm_lora(cx[:, :48], sx, cw[:, :48], sw, la, up, b),
         "K=96 .* not divisible by group_size=64"),
        (lambda: w4a4_gemm_lora(*g, group_size=32), "group_size must be 64"),
        (lambda: w4a4_gemm_lora(cx, sx, cw[:, :32], sw, la, up, b),
         r"codes_w must have shape \(\*, 64\), got \(3, 32\)"),
        (lambda: w4a4_gemm_lora(cx, sx[:, :1], cw, sw, la, up, b), r"sx must have shape \(4, 2\)"),
        (lambda: w4a4_gemm_lora(cx, sx, cw, sw, la[:, :8], up[:, :8], b),
         "lora_act has LoRA rank 8, not a multiple of 16"),
        (lambda: w4a4_gemm_lora(cx, sx, cw, sw, la, up[:, :0], b), r"lora_up must have shape"),
        (lambda: w4a4_gemm_lora(*g[:6], b.double()), "bias must be torch.float32"),
        (lambda: w4a4_gemm_lora(cx, sx_inf, cw, sw, la, up, b), r"sx holds inf at index \(0, 1\)"),
        (lambda: w4a4_gemm_lora(cx, sx, cw, sw, la, up, b.to("meta")), "different devices"),
        (lambda: w4a4_gemm_lora(*g, block_n=8), "block_n must be a power of two"),
        (lambda: quantize_act_nvfp4(x[:, :40], s[:40], d[:, :40]), "K=40 .* NVFP4 group 16"),
        (lambda: quantize_act_nvfp4(x, s, d, global_scale=0.0), "global_scale must be .* > 0"),
        (lambda: quantize_act_nvfp4(nan_x, s, d), r"x holds nan at index \(2, 5\)"),
        (lambda: nvfp4_gemm_lora(cx, sx.repeat(1, 4), -1.0, cw, sw.repeat(1, 4), 1.0, la, up, b),
         "tx must be a finite float > 0, got -1.0"),
        (lambda: nvfp4_gemm_lora(cx, sx, 1.0, cw, sw, 1.0, la, up, b),
         r"sx must have shape \(4, 8\)"),
        (lambda: w4a4_linear(x, object()), "layer must be a golden.svdquant.SVDQuantLinear"),
    ]


class TestBadInputs:
    @pytest.mark.parametrize("case", range(len(_bad_cases())))
    def test_rejected_before_launch(self, case, no_launch):
        fn, match = _bad_cases()[case]
        with pytest.raises(ValueError, match=match):
            fn()

    def test_linear_bad_x(self, no_launch):
        w = torch.randn(16, 64)
        layer = quantize_linear(w.numpy(), torch.randn(8, 64).numpy(), rank=16, alpha=0.5)
        with pytest.raises(ValueError, match=r"x must have shape \(\.\.\., 64\), got \(3, 32\)"):
            w4a4_linear(torch.zeros(3, 32), layer)
        with pytest.raises(ValueError, match="x must be torch.float32, got torch.float64"):
            w4a4_linear(torch.zeros(3, 64, dtype=torch.float64), layer)
        x = torch.zeros(3, 64)
        x[1, 1] = float("nan")
        with pytest.raises(ValueError, match=r"x holds nan at index \(1, 1\)"):
            w4a4_linear(x, layer)
