"""The Triton COAT FP8 kernels (interpreted on a CPU) against golden.coat / golden.fp8.

Stated equality:

* ``fp8_round`` and ``quantize_per_group`` (+ dequantize): bit-exact (codes, scales, values).
* ``expand_quantize``: ``k``, ``centre``, ``scale`` bit-exact (float64 per-group math in the
  kernel); codes equal except where the float32 elementwise power lands next to a rounding tie:
  then the code is one step away. Asserted: at most max(3, MISMATCH_RATE * n) of n codes
  (measured 17 of 6.4M = 2.6e-6; at most 2.3e-5 for K_MAX-clamped groups).
* ``expand_dequantize``: where codes agree, ``|x - golden| <= DEQ_RTOL |golden|``; the total
  relative quantization error equals golden's to ERR_RTOL.
"""

import ml_dtypes
import numpy as np
import pytest
import torch

import golden.coat as gc
import golden.fp8 as gf
from sw import coat

MISMATCH_RATE = 1e-4
DEQ_RTOL = 1e-5
ERR_RTOL = 1e-3
FMTS = {"e4m3": (ml_dtypes.float8_e4m3fn, 448.0), "e5m2": (ml_dtypes.float8_e5m2, 57344.0)}
BACKENDS = ["triton", "torch"]


def _bits(codes) -> np.ndarray:
    return np.asarray(codes).view(np.uint8).astype(np.int32)


def _rounding_probe(fmt: str) -> np.ndarray:
    """Every fp8 value, every tie between neighbours and the float32 values either side of
    it, fp32 subnormals, saturating values, signed zeros and random bit patterns."""
    dt, fmax = FMTS[fmt]
    vals = np.arange(256, dtype=np.uint8).view(dt).astype(np.float32)
    vals = np.unique(vals[np.isfinite(vals)])
    ties = ((vals[:-1].astype(np.float64) + vals[1:]) / 2).astype(np.float32)
    assert np.all(ties.astype(np.float64) == (vals[:-1].astype(np.float64) + vals[1:]) / 2)
    up, down = np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))
    rng = np.random.default_rng(0)
    rand = rng.integers(0, 2**32, 60000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    rand = rand[np.isfinite(rand)]
    sub = rng.integers(1, 2**23, 2000).astype(np.uint32).view(np.float32)
    spread = rng.standard_normal(30000) * 10.0 ** rng.uniform(-12, 6, 30000)
    edge = [0.0, -0.0, fmax, -fmax, fmax * 1.0001, np.nextafter(np.float32(fmax), np.inf),
            1e38, -3.4e38, 464.0, 480.0, 61440.0, 2.0**-9, 2.0**-10, 2.0**-16, 2.0**-17]
    x = np.concatenate([vals, ties, up, down, rand, sub, spread, edge]).astype(np.float32)
    return x[np.isfinite(x)]


class TestFp8Round:
    @pytest.mark.parametrize("fmt", list(FMTS))
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_equals_ml_dtypes_cast(self, fmt, backend):
        x = _rounding_probe(fmt)
        out = coat.fp8_round(torch.from_numpy(x), fmt, backend=backend)
        ref = gf.fp8_round(x, fmt)                       # saturate, then ml_dtypes RNE cast
        np.testing.assert_array_equal(_bits(out.view(torch.uint8).numpy()), _bits(ref))

    def test_signed_zero_max_and_saturation(self):
        x = torch.tensor([-0.0, -1e-30, 448.0, 1e30, -464.0, 2.0**-10 * 3])
        bits = coat.fp8_round(x, "e4m3").view(torch.uint8).tolist()
        assert bits == [0x80, 0x80, 0x7E, 0x7E, 0xFE, 0x02]   # 1.5 * 2^-9 ties to even (2)


class TestQuantizePerGroup:
    @pytest.mark.parametrize("shape,group", [((64, 128), 16), ((3, 5, 32), 16), ((2, 96), 48),
                                             ((7, 16), 16), ((130,), 13)])
    @pytest.mark.parametrize("fmt", list(FMTS))
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_bit_exact(self, shape, group, fmt, backend):
        rng = np.random.default_rng(len(shape) + group)
        x = (rng.standard_normal(shape) * 10.0 ** rng.uniform(-8, 3, shape)).astype(np.float32)
        x.reshape(-1)[:group] = 0.0                      # an all-zero group (scale 1)
        q = coat.quantize_per_group(torch.from_numpy(x), group, fmt, backend=backend)
        ref = gf.quantize_per_group(x, group, fmt)
        assert q.codes.shape == x.shape and q.scales.shape == ref.scales.shape
        np.testing.assert_array_equal(_bits(q.to_golden().codes), _bits(ref.codes))
        np.testing.assert_array_equal(q.scales.numpy(), ref.scales)
        np.testing.assert_array_equal(coat.dequantize_per_group(q, backend=backend).numpy(),
                                      gf.dequantize(ref))
        np.testing.assert_array_equal(coat.dequantize_per_group(ref, backend=backend).numpy(),
                                      gf.dequantize(ref))

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_half_inputs(self, dtype):
        x = torch.randn(8, 64).to(dtype)
        q = coat.quantize_per_group(x, 16)
        ref = gf.quantize_per_group(x.float().numpy(), 16)
        np.testing.assert_array_equal(_bits(q.to_golden().codes), _bits(ref.codes))

    def test_decode_every_code(self):
        for fmt, (dt, _) in FMTS.items():
            codes = np.arange(256, dtype=np.uint8).view(dt)
            codes = codes[np.isfinite(codes.astype(np.float32))].reshape(1, -1)
            ref = gf.Fp8Quantized(codes, np.ones(1, np.float32), fmt, codes.shape[1])
            got = coat.dequantize_per_group(ref).numpy()
            np.testing.assert_array_equal(got.view(np.int32),
                                          codes.astype(np.float32).view(np.int32))


def _expand_data():
    rng = np.random.default_rng(3)
    special = np.zeros((8, 128), np.float32)
    special[1] = 0.5                                     # M == m: k = 1, codes +-F
    special[2, 5] = -3.0                                 # a single nonzero
    special[3] = 1.0 + rng.uniform(0, 1e-4, 128)         # narrow: k clamped to K_MAX
    special[4, :2] = [3e38, 1e-45]                       # wider than 2^265: k = K_MIN
    special[5] = -0.0                                    # negative zeros
    special[6] = rng.standard_normal(128) * (rng.uniform(size=128) < 0.3)
    special[7] = rng.standard_normal(128).astype(np.float32) * 1e-40   # subnormals
    return {
        "moment1": gc.synthetic_moments(16384, 1, seed=1),
        "moment2": gc.synthetic_moments(16384, 2, seed=2),
        "gauss_3d": rng.standard_normal((4, 33, 100)).astype(np.float32),   # 13200: ragged
        "wide": gc.synthetic_moments(4096, 1, seed=4, decades=30),
        "special": special,
    }


def _compare_expand(x: np.ndarray, q, ref, fmt: str) -> None:
    mine = q.to_golden()
    assert mine.codes.shape == ref.codes.shape and mine.fmt == fmt
    for name in ("k", "centre", "scale"):
        np.testing.assert_array_equal(getattr(mine, name), getattr(ref, name), err_msg=name)
    a, b = _bits(mine.codes), _bits(ref.codes)
    bad = a != b
    assert bad.sum() <= max(3, MISMATCH_RATE * bad.size), f"{bad.sum()} of {bad.size} differ"
    # a mismatch is one step of the grid, same sign (or a signed zero against the first step)
    assert np.all(np.abs((a & 0x7F) - (b & 0x7F))[bad] == 1)
    assert np.all(((a ^ b) & 0x80)[bad & ((a & 0x7F) > 0) & ((b & 0x7F) > 0)] == 0)
    d = coat.expand_dequantize(q).numpy()
    dg = gc.expand_dequantize(ref)
    rel = np.abs(d.astype(np.float64) - dg) / np.maximum(np.abs(dg), 1e-45)
    assert rel[~bad].max(initial=0.0) <= DEQ_RTOL
    e, eg = gc.relative_error(x, d), gc.relative_error(x, dg)
    assert abs(e - eg) <= ERR_RTOL * eg + 1e-7


class TestExpand:
    @pytest.mark.parametrize("name", list(_expand_data()))
    @pytest.mark.parametrize("fmt", list(FMTS))
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_matches_golden(self, name, fmt, backend):
        x = _expand_data()[name]
        q = coat.expand_quantize(torch.from_numpy(x), 128, fmt, backend=backend)
        _compare_expand(x, q, gc.expand_quantize(x, 128, fmt), fmt)

    @pytest.mark.parametrize("group", [32, 100, 1000])
    def test_group_sizes_not_dividing(self, group):
        x = gc.synthetic_moments(5000, 1, seed=group).reshape(50, 100)
        q = coat.expand_quantize(torch.from_numpy(x), group)
        assert q.scale.shape == (-(-5000 // group),)
        _compare_expand(x, q, gc.expand_quantize(x, group), "e4m3")

    def test_special_groups_exact(self):
        x = _expand_data()["special"]
        q = coat.expand_quantize(torch.from_numpy(x), 128).to_golden()
        ref = gc.expand_quantize(x, 128)
        np.testing.assert_array_equal(_bits(q.codes), _bits(ref.codes))
        assert q.k[0] == q.k[1] == q.k[2] == 1.0 and q.k[3] == gc.K_MAX and q.k[4] == gc.K_MIN
        assert q.centre[0] == q.scale[0] == 1.0 and not _bits(q.codes)[[0, 5]].any()

    @pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
    def test_half_inputs(self, dtype):
        x = torch.from_numpy(gc.synthetic_moments(4096, 1, seed=8) * 1e3).to(dtype)
        xf = x.float().numpy()
        _compare_expand(xf, coat.expand_quantize(x), gc.expand_quantize(xf), "e4m3")

    def test_golden_object_dequantizes(self):
        x = gc.synthetic_moments(2000, 2, seed=5)
        ref = gc.expand_quantize(x, 128)
        for backend in BACKENDS:
            d = coat.expand_dequantize(ref, backend=backend).numpy()
            np.testing.assert_allclose(d, gc.expand_dequantize(ref), rtol=DEQ_RTOL, atol=0)

    def test_empty(self):
        q = coat.expand_quantize(torch.zeros(0, 4), 128)
        assert q.codes.shape == (0, 4) and q.scale.shape == (0,)
        assert coat.expand_dequantize(q).shape == (0, 4)


class TestBadInputs:
    @pytest.mark.parametrize("backend", BACKENDS)
    def test_quantizers(self, backend):
        x = torch.randn(4, 32)
        fns = (coat.expand_quantize, coat.quantize_per_group)
        for fn in fns:
            def bad(match, *args, fn=fn, **kw):
                with pytest.raises(ValueError, match=match):
                    fn(*args, backend=backend, **kw)

            bad("x must be a numpy array or a torch tensor, got list", x.tolist())
            bad("x must be float32, float16 or bfloat16, got torch.int32", x.int())
            bad(r"unknown fmt 'e3m4': expected one of \['e4m3', 'e5m2'\]", x, fmt="e3m4")
            bad("group_size must be a positive integer, got 0", x, group_size=0)
            bad("group_size must be a positive integer, got True", x, group_size=True)
            bad("group_size must be a positive integer, got 16.0", x, group_size=16.0)
            for v in (float("nan"), float("inf")):
                y = x.clone()
                y[2, 3] = v
                bad(f"x holds a non-finite value \\({v}\\)", y)
        with pytest.raises(ValueError, match=r"group_size 24 does not divide the last axis"):
            coat.quantize_per_group(x, 24, backend=backend)
        with pytest.raises(ValueError, match="x must have at least one axis"):
            coat.quantize_per_group(torch.tensor(1.0), 1, backend=backend)
        with pytest.raises(ValueError, match="unknown fmt"):
            coat.fp8_round(x, "fp8", backend=backend)

    def test_backend_and_group_limit(self):
        x = torch.randn(64)
        with pytest.raises(ValueError, match="backend must be one of"):
            coat.expand_quantize(x, backend="cuda")
        with pytest.raises(ValueError, match="group_size must be <= 8192 for backend='triton'"):
            coat.expand_quantize(x, 16384)
        assert coat.expand_quantize(x, 16384, backend="torch").scale.shape == (1,)

    def test_dequantizers(self):
        q = coat.expand_quantize(torch.randn(256))
        with pytest.raises(ValueError, match="q must be an ExpandedFp8Tensor, got str"):
            coat.expand_dequantize("q")
        with pytest.raises(ValueError, match=r"q.k must be float32 with 2 values"):
            coat.expand_dequantize(coat.ExpandedFp8Tensor(q.codes, q.scale, q.k[:1], q.centre,
                                                          128, "e4m3"))
        with pytest.raises(ValueError, match="q.scale must be finite and > 0"):
            coat.expand_dequantize(coat.ExpandedFp8Tensor(q.codes, -q.scale, q.k, q.centre,
                                                          128, "e4m3"))
        with pytest.raises(ValueError, match="does not match fmt 'e5m2'"):
            coat.expand_dequantize(coat.ExpandedFp8Tensor(q.codes, q.scale, q.k, q.centre,
                                                          128, "e5m2"))
        nan = torch.full((4, 16), 0x7F, dtype=torch.uint8).view(torch.float8_e4m3fn)
        with pytest.raises(ValueError, match="NaN/Inf code"):
            coat.dequantize_per_group(coat.GroupFp8Tensor(nan, torch.ones(4, 1), 16, "e4m3"))
        with pytest.raises(ValueError, match="q must be a GroupFp8Tensor"):
            coat.dequantize_per_group(q)
