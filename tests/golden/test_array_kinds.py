"""golden's array rule (golden.arrays): numpy arrays and torch tensors alike, results in the
caller's kind, identical values (bit for bit: the computation is the same either way)."""

from __future__ import annotations

import dataclasses
import inspect
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

from golden import (
    coat,
    duo_attention,
    duo_identify,
    duo_identify_model,
    fixed_point,
    fp8,
    group_dequant,
    int_gemm,
    kv_cache,
    linear_attention,
    linear_attention_fixed,
    loop_nest,
    mix_ffn,
    nvfp4,
    softmax_fixed,
    svdquant,
    svdquant_ops,
)
from golden.arrays import ArrayTypeError, array_function, to_numpy, to_torch

ROOT = Path(__file__).resolve().parents[2]
RNG = np.random.default_rng(0)


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _ints(lo: int, hi: int, shape: tuple[int, ...], dtype=np.int64) -> np.ndarray:
    return RNG.integers(lo, hi + 1, size=shape).astype(dtype)


@dataclasses.dataclass(frozen=True)
class Case:
    """``fn(*args, **kwargs)`` with numpy array arguments (the torch call converts them)."""

    id: str
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------------- fixtures

X64 = _f32(4, 64)
W64 = _f32(8, 64)
LAYER = svdquant.quantize_linear(W64, _f32(16, 64), rank=4, alpha=0.5)
LAYER_U = svdquant.quantize_linear(W64, np.abs(_f32(16, 64)), rank=0, method="smooth",
                                   alpha=0.5, act_unsigned=True)
QX, SX = svdquant_ops.quantize_int4(X64)
QW, SW = svdquant_ops.quantize_int4(W64)
SPEC = group_dequant.GroupDequantSpec()
DOTS = group_dequant.group_dots(QX, QW)
MANT, EXP = group_dequant.encode_scale_products(SX, SW, SPEC)
Q4, K4, V4 = _f32(1, 4, 6, 8), _f32(1, 2, 6, 8), _f32(1, 2, 6, 8)
TASK = duo_identify_model.PasskeyTask(length=40, n_filler=4)
with torch.random.fork_rng():
    torch.manual_seed(0)
    MODEL = duo_identify_model.TinyLM(duo_identify_model.TinyLMConfig(
        vocab=TASK.vocab, length=40, d_model=16, layers=1, heads=2, head_dim=8, mlp=16, sink=2,
        recent=4)).eval().requires_grad_(False)
TOK = TASK.batch(3, torch.Generator().manual_seed(0))[0].numpy()
GATES = np.array([[0.9, 0.2]], np.float32)
ACCESS_A = (((1, 0, 0), (0, 0, 1)), (0, 0))
ACCESS_B = (((0, 0, 1), (0, 1, 0)), (0, 0))
ACCESS_C = (((1, 0, 0), (0, 1, 0)), (0, 0))


def _gates(answer_pos):
    return duo_identify.optimize_gates(MODEL.hidden, lambda s: torch.from_numpy(TOK), answer_pos,
                                       (1, 2), steps=1)


CASES = [
    # fixed_point, int_gemm, loop_nest: int64 in, int64 out
    Case("round_shift_right", fixed_point.round_shift_right, (_ints(-999, 999, (5, 3)), 3)),
    Case("saturate", fixed_point.saturate, (_ints(-999, 999, (5, 3), np.int32), 8)),
    Case("to_fixed", fixed_point.to_fixed, (RNG.standard_normal(7), 8)),
    Case("reciprocal", fixed_point.reciprocal, (_ints(1, 999, (6,)), 16)),
    Case("check_range", int_gemm.check_range, ("x", _ints(-8, 7, (3, 4), np.int8),
                                               int_gemm.int_type("int4"))),
    Case("int_gemm", int_gemm.int_gemm, (_ints(-128, 127, (5, 7), np.int8),
                                         _ints(-128, 127, (7, 3), np.int8))),
    Case("affine_mac", loop_nest.affine_mac, ((2, 3, 4), _ints(-8, 7, (2, 4)), ACCESS_A,
                                              _ints(-8, 7, (4, 3)), ACCESS_B, (2, 3), ACCESS_C)),
    # linear attention, float and fixed point
    Case("linear_attention", linear_attention.linear_attention, (Q4[:, :2], K4, V4)),
    Case("linear_attention_quadratic", linear_attention.linear_attention_quadratic,
         (Q4[:, :2], K4, V4)),
    Case("datapath_error_bound", linear_attention_fixed.datapath_error_bound,
         (np.abs(_f32(5)),)),
    Case("linear_attention_int", linear_attention_fixed.linear_attention_int,
         (_ints(-128, 127, (2, 5, 8), np.int8), _ints(-128, 127, (2, 6, 8), np.int8),
          _ints(-128, 127, (2, 6, 4), np.int8))),
    Case("quantize_int8", linear_attention_fixed.quantize_int8, (_f32(3, 5),)),
    Case("decode", linear_attention_fixed.decode, (_ints(-999, 999, (3, 4)), 0.05, 8)),
    Case("linear_attention_fixed", linear_attention_fixed.linear_attention_fixed,
         (Q4[0, :2], K4[0], V4[0])),
    Case("mix_ffn", mix_ffn.mix_ffn, (_f32(1, 9, 8),
                                      mix_ffn.init_mix_ffn_weights(8, hidden=6), (3, 3))),
    # SVDQuant and its arithmetic
    Case("svdquant.relative_error", svdquant.relative_error, (_f32(4, 3), _f32(4, 3))),
    Case("smoothing_factors", svdquant.smoothing_factors, (X64, W64, 0.5)),
    Case("quantize_linear", svdquant.quantize_linear, (W64, X64),
         {"rank": 4, "alpha": 0.5, "bias": _f32(8)}),
    Case("SVDQuantLinear.__call__", LAYER.__call__, (_f32(2, 3, 64),)),
    Case("SVDQuantLinear.__call__ act_unsigned", LAYER_U.__call__, (np.abs(X64),)),
    Case("SVDQuantLinear.quantize_input", LAYER.quantize_input, (X64,)),
    Case("SVDQuantLinear.with_lora", LAYER.with_lora, (_f32(4, 64), _f32(8, 4))),
    Case("quantize_int4", svdquant_ops.quantize_int4, (X64,)),
    Case("dequantize_int4", svdquant_ops.dequantize_int4, (QW, SW)),
    Case("fma_f32", svdquant_ops.fma_f32, (_f32(5), _f32(5), _f32(5))),
    Case("fold_act_shift", svdquant_ops.fold_act_shift, (_f32(8), W64, np.float32(0.25))),
    Case("w4a4_gemm", svdquant_ops.w4a4_gemm, (QX, SX, QW, SW), {"fma": True}),
    Case("e2m1_decode", nvfp4.e2m1_decode, (_ints(0, 15, (3, 16), np.uint8),)),
    Case("quantize_nvfp4", nvfp4.quantize_nvfp4, (X64,)),
    Case("group_dots", group_dequant.group_dots, (QX, QW)),
    Case("encode_scale_products", group_dequant.encode_scale_products, (SX, SW, SPEC)),
    Case("accumulate_groups", group_dequant.accumulate_groups, (DOTS, MANT, EXP, SPEC)),
    Case("group_dequant_gemm", group_dequant.group_dequant_gemm, (QX, SX, QW, SW)),
    Case("dequant_error_bound", group_dequant.dequant_error_bound, (DOTS, SX, SW, SPEC)),
    # softmax, FP8, COAT
    Case("softmax_fixed", softmax_fixed.softmax_fixed, (_ints(-3000, 3000, (3, 7), np.int32),)),
    Case("softmax_fixed_float", softmax_fixed.softmax_fixed_float, (_ints(-3000, 3000, (3, 7)),)),
    Case("fp8_round", fp8.fp8_round, (_f32(4, 8) * 100,), {"fmt": "e5m2"}),
    Case("fp8.quantize_per_tensor", fp8.quantize_per_tensor, (_f32(4, 8),)),
    Case("fp8.quantize_per_group", fp8.quantize_per_group, (_f32(4, 32),)),
    Case("expand_quantize", coat.expand_quantize, (_f32(300),)),
    Case("coat.quantize_per_group", coat.quantize_per_group, (_f32(300),)),
    Case("coat.relative_error", coat.relative_error, (_f32(30), _f32(30))),
    # DuoAttention references and caches (torch native)
    Case("attend_visible", duo_attention.attend_visible, (Q4[:, :2, :1], K4, V4)),
    Case("full_attention", duo_attention.full_attention, (Q4, K4, V4)),
    Case("full_attention non-causal", duo_attention.full_attention, (Q4, K4, V4, False)),
    Case("streaming_attention", duo_attention.streaming_attention, (Q4, K4, V4, 1, 2)),
    Case("duo_attention", duo_attention.duo_attention, (Q4, K4, V4, [True, False], 1, 2)),
    Case("mixed_attention", duo_attention.mixed_attention,
         (Q4, K4, V4, np.array([0.25, 1.0], np.float32), 1, 2)),
    Case("StreamingKVCache.prefill", lambda q, k, v: kv_cache.StreamingKVCache(
        1, 2, 8, 1, 2).prefill(q, k, v, 4), (Q4, K4, V4)),
    Case("FullKVCache.step", lambda q, k, v: kv_cache.FullKVCache(1, 2, 8).step(q, k, v),
         (Q4, K4, V4)),
    Case("DuoCache.prefill", lambda q, k, v: kv_cache.DuoCache(1, [False, True], 8, 1, 2).prefill(
        q, k, v, 4), (Q4, K4, V4)),
    Case("chunked", lambda q, k, v: kv_cache.chunked(kv_cache.FullKVCache(1, 2, 8).step, q, k, v,
                                                     4), (Q4, K4, V4)),
    Case("selection", duo_identify.selection, (GATES, 1)),
    Case("passkey_accuracy", lambda tok, alpha: duo_identify_model.passkey_accuracy(
        MODEL, TASK, tok, alpha), (TOK, GATES)),
    Case("evaluate_selections", lambda tok, alpha: duo_identify.evaluate_selections(
        MODEL, TASK, tok, alpha, random_draws=1), (TOK, GATES)),
    Case("accuracy_curve", lambda tok, alpha: duo_identify.accuracy_curve(
        MODEL, TASK, tok, alpha, [0, 1, 2]), (TOK, GATES)),
    Case("optimize_gates", _gates, (TASK.answer_positions.numpy(),)),
]


# ---------------------------------------------------------------------------------- helpers


def _torch_args(args: tuple, which: Callable[[int], bool] = lambda i: True) -> tuple:
    """``args`` with the numpy arrays (the i-th, where ``which(i)``) as tensors."""
    out, i = [], 0
    for a in args:
        if isinstance(a, np.ndarray):
            out.append(torch.from_numpy(a.copy()) if which(i) else a)
            i += 1
        else:
            out.append(a)
    return tuple(out)


def _n_arrays(case: Case) -> int:
    return sum(isinstance(a, np.ndarray) for a in case.args)


def _kinds(result: Any) -> set[str]:
    """Kinds of the arrays in a result (itself or tuple items; dataclasses hold native ones)."""
    items = result if type(result) is tuple else (result,)
    return {"torch" if isinstance(r, torch.Tensor) else "numpy" for r in items
            if isinstance(r, torch.Tensor | np.ndarray)}


def _assert_same(a: Any, b: Any, where: str = "result") -> None:
    """Same structure, dtypes and bytes (tensors compared as their numpy values)."""
    a = to_numpy(a) if isinstance(a, torch.Tensor) else a
    b = to_numpy(b) if isinstance(b, torch.Tensor) else b
    if isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), where
        assert (a.dtype, a.shape) == (b.dtype, b.shape), where
        assert np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes(), where
    elif dataclasses.is_dataclass(a):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            _assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, tuple | list):
        assert type(a) is type(b) and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same(a[key], b[key], f"{where}[{key!r}]")
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# ---------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_numpy_and_torch_give_the_same_values_in_the_callers_kind(case: Case) -> None:
    from_numpy = case.fn(*case.args, **case.kwargs)
    from_torch = case.fn(*_torch_args(case.args), **case.kwargs)
    assert _kinds(from_numpy) <= {"numpy"}
    assert _kinds(from_torch) <= {"torch"}
    assert _kinds(from_numpy) or not _kinds(from_torch)
    _assert_same(from_numpy, from_torch)


MIXED = [c for c in CASES if _n_arrays(c) >= 2]


@pytest.mark.parametrize("case", MIXED, ids=lambda c: c.id)
@pytest.mark.parametrize("first", ["torch", "numpy"])
def test_mixed_arguments_the_first_array_decides(case: Case, first: str) -> None:
    """One tensor and the rest arrays (or the reverse): the first array argument's kind wins."""
    ref = case.fn(*case.args, **case.kwargs)
    flip = (lambda i: i == 0) if first == "torch" else (lambda i: i > 0)
    got = case.fn(*_torch_args(case.args, flip), **case.kwargs)
    assert _kinds(got) <= {first}
    _assert_same(ref, got)


def _first_array_name(case: Case) -> tuple[str, int]:
    index = next(i for i, a in enumerate(case.args) if isinstance(a, np.ndarray))
    params = list(inspect.signature(case.fn).parameters)
    return params[index], index


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("bad", [[[1, 2], [3, 4]], "abc"], ids=["list", "str"])
def test_other_types_are_rejected_by_name(case: Case, bad: Any) -> None:
    name, index = _first_array_name(case)
    args = (*case.args[:index], bad, *case.args[index + 1:])
    with pytest.raises(TypeError, match=rf"^{name} must be a numpy array or a torch tensor, "
                                        rf"got {type(bad).__name__}$") as info:
        case.fn(*args, **case.kwargs)
    assert isinstance(info.value, ValueError)  # golden's usual input error, too


# -------------------------------------------------------------- the cases of the bug report


def test_duo_attention_takes_numpy() -> None:
    out = duo_attention.duo_attention(Q4, K4, V4, np.array([True, False]), 1, 2)
    assert isinstance(out, np.ndarray) and out.dtype == np.float32
    ref = duo_attention.duo_attention(*_torch_args((Q4, K4, V4)), [True, False], 1, 2)
    np.testing.assert_array_equal(out, ref.numpy())


def test_svdquant_layer_answers_a_tensor_with_a_tensor() -> None:
    x = torch.from_numpy(_f32(3, 64))
    y = LAYER(x)
    assert isinstance(y, torch.Tensor) and y.dtype == torch.float32 and y.shape == (3, 8)
    np.testing.assert_array_equal(y.numpy(), LAYER(x.numpy()))


# ---------------------------------------------------------------------------------- the helper


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.bool_, np.float16,
                                   np.float32, np.float64, ml_dtypes.bfloat16,
                                   ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2])
def test_conversions_keep_dtype_and_bits(dtype) -> None:
    a = (np.abs(RNG.standard_normal((3, 4))) * 10).astype(dtype)
    t = to_torch(a)
    assert str(t.dtype).removeprefix("torch.") == np.dtype(dtype).name
    back = to_numpy(t)
    assert back.dtype == a.dtype and back.tobytes() == a.tobytes()


def test_conversions_of_awkward_arrays() -> None:
    a = np.arange(12, dtype=np.int16).reshape(3, 4)[::-1, ::2]  # negative strides
    np.testing.assert_array_equal(to_torch(a).numpy(), a)
    ro = np.broadcast_to(np.arange(4.0), (3, 4))  # read-only
    np.testing.assert_array_equal(to_torch(ro).numpy(), ro)
    be = np.arange(4, dtype=">i4")  # non-native byte order
    np.testing.assert_array_equal(to_torch(be).numpy(), be)
    t = torch.ones(3, requires_grad=True) * 2  # needs detaching
    np.testing.assert_array_equal(to_numpy(t), [2.0, 2.0, 2.0])


def test_tensors_pass_through_torch_functions_with_autograd() -> None:
    q, k, v = (torch.from_numpy(a).requires_grad_() for a in (Q4, K4, V4))
    alpha = torch.tensor([0.5, 0.5], requires_grad=True)
    duo_attention.mixed_attention(q, k, v, alpha, 1, 2).sum().backward()
    assert all(t.grad is not None for t in (q, k, v, alpha))


def test_none_only_where_the_default_is_none() -> None:
    @array_function("a", "b")
    def f(a, b=None):
        return a if b is None else a + b

    assert isinstance(f(np.ones(2)), np.ndarray)
    with pytest.raises(ArrayTypeError, match="a must be a numpy array or a torch tensor, got "
                                             "NoneType"):
        f(None)


def test_scalars_do_not_decide_the_kind() -> None:
    got = svdquant_ops.fma_f32(2.0, torch.ones(3), np.ones(3, np.float32))
    assert isinstance(got, torch.Tensor) and got.tolist() == [3.0, 3.0, 3.0]
    assert isinstance(fixed_point.saturate(300, 8), np.ndarray | np.integer)


def test_unknown_parameter_is_a_programming_error() -> None:
    with pytest.raises(TypeError, match=r"has no parameters \['c'\]"):
        array_function("c")(lambda a: a)


NUMPY_MODULES = ("arrays", "coat", "fixed_point", "fp8", "group_dequant", "int_gemm",
                 "int_types", "kv_memory", "linear_attention_fixed", "loop_nest", "nvfp4",
                 "softmax_fixed", "svdquant", "svdquant_ops", "svdquant_synth")


def test_numpy_modules_and_numpy_calls_import_no_torch() -> None:
    code = (
        "import importlib, sys\n"
        "import numpy as np\n"
        f"mods = {{m: importlib.import_module('golden.' + m) for m in {NUMPY_MODULES!r}}}\n"
        "a, b = mods['int_gemm'].random_operands(4, 8, 3)\n"
        "mods['int_gemm'].int_gemm(a, b)\n"
        "mods['fixed_point'].saturate(a, 4)\n"
        "x = np.random.default_rng(0).standard_normal((4, 64)).astype(np.float32)\n"
        "layer = mods['svdquant'].quantize_linear(x, x, method='smooth', alpha=0.5)\n"
        "layer(x), mods['nvfp4'].quantize_nvfp4(x), mods['coat'].expand_quantize(x)\n"
        "mods['fp8'].fp8_round(x), mods['softmax_fixed'].softmax_fixed(a)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "False"
