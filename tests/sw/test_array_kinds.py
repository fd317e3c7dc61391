"""sw's array rule (sw.arrays, golden.arrays with torch native): tensors and numpy arrays alike,
results in the caller's kind, identical values (bit for bit: the computation is the same)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from golden.arrays import to_numpy
from golden.svdquant import quantize_linear
from sw import coat
from sw.duo_attention import DuoKVCache, decode_step, duo_attention, prefill
from sw.int8_gemm import int8_gemm
from sw.linear_attention import linear_attention
from sw.svdquant import (
    nvfp4_gemm_lora,
    pack_int4,
    quantize_act,
    quantize_act_nvfp4,
    unpack_int4,
    w4a4_gemm_lora,
    w4a4_linear,
)

RNG = np.random.default_rng(0)


def _f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def _ints(lo: int, hi: int, shape: tuple[int, ...], dtype) -> np.ndarray:
    return RNG.integers(lo, hi + 1, size=shape).astype(dtype)


@dataclasses.dataclass(frozen=True)
class Case:
    """``fn(*args, **kwargs)`` with numpy array arguments (the torch call converts them)."""

    id: str
    fn: Callable[..., Any]
    args: tuple
    kwargs: dict = dataclasses.field(default_factory=dict)


# ---------------------------------------------------------------------------------- fixtures

X, SMOOTH, DOWN = _f32(4, 64), np.abs(_f32(64)) + 0.5, _f32(16, 64) / 8
CX, SX, LA = (t.numpy() for t in quantize_act(torch.from_numpy(X), torch.from_numpy(SMOOTH),
                                                torch.from_numpy(DOWN), backend="torch"))
CW = _ints(0, 255, (3, 32), np.uint8)
SW, UP, BIAS = np.abs(_f32(3, 1)), _f32(3, 16), _f32(3)
NX = quantize_act_nvfp4(torch.from_numpy(X), torch.from_numpy(SMOOTH), torch.from_numpy(DOWN),
                        backend="torch")
NCX, NSX, NTX = NX[0].numpy(), NX[1].numpy(), NX[2]
NSW = np.full((3, 4), 0.5, np.float32)
LAYER = quantize_linear(_f32(8, 64), _f32(16, 64), rank=4, alpha=0.5)
Q, K, V = _f32(1, 4, 6, 16), _f32(1, 2, 6, 16), _f32(1, 2, 6, 16)
Q1, K1, V1 = Q[:, :, :1], K[:, :, :1], V[:, :, :1]
DUO = {"retrieval": [True, False], "sink": 1, "recent": 2}


def _cache(backend: str = "torch") -> DuoKVCache:
    return DuoKVCache(1, [True, False], 16, 1, 2, backend=backend)


def _prefilled() -> DuoKVCache:
    cache = _cache()
    cache.prefill(*(torch.from_numpy(a) for a in (Q, K, V)), chunk=4)
    return cache


CASES = [
    Case("int8_gemm", int8_gemm, (_ints(-128, 127, (5, 7), np.int8),
                                  _ints(-128, 127, (7, 3), np.int8))),
    Case("linear_attention", linear_attention, (Q[:, :2, :5], K, V[..., :8])),
    Case("linear_attention torch", linear_attention, (Q[:, :2], K, V), {"backend": "torch"}),
    Case("pack_int4", pack_int4, (_ints(-8, 7, (3, 8), np.int8),)),
    Case("unpack_int4", unpack_int4, (_ints(0, 255, (3, 4), np.uint8),)),
    Case("quantize_act", quantize_act, (X, SMOOTH, DOWN), {"backend": "torch"}),
    Case("w4a4_gemm_lora", w4a4_gemm_lora, (CX, SX, CW, SW, LA, UP, BIAS), {"backend": "torch"}),
    Case("quantize_act_nvfp4", quantize_act_nvfp4, (X, SMOOTH, DOWN), {"backend": "torch"}),
    Case("nvfp4_gemm_lora", nvfp4_gemm_lora, (NCX, NSX, NTX, CW, NSW, 0.25, LA, UP, BIAS),
         {"backend": "torch"}),
    Case("w4a4_linear", w4a4_linear, (_f32(2, 3, 64), LAYER)),
    Case("w4a4_linear torch", w4a4_linear, (_f32(2, 3, 64), LAYER), {"backend": "torch"}),
    Case("duo_attention", duo_attention, (Q, K, V), {**DUO, "return_stats": True}),
    Case("duo_attention torch", duo_attention, (Q, K, V), {**DUO, "backend": "torch"}),
    Case("prefill", prefill, (Q, K, V), {**DUO, "chunk": 4, "backend": "torch"}),
    Case("DuoKVCache.prefill", lambda q, k, v: _cache().prefill(q, k, v, 4), (Q, K, V)),
    Case("DuoKVCache.step", lambda q, k, v: _cache().step(q, k, v), (Q, K, V)),
    Case("DuoKVCache.decode_step", lambda q, k, v: _prefilled().decode_step(q, k, v),
         (Q1, K1, V1)),
    Case("decode_step", lambda q, k, v: decode_step(_prefilled(), q, k, v), (Q1, K1, V1)),
    Case("fp8_round", coat.fp8_round, (_f32(4, 8) * 300,)),
    Case("fp8_round torch", coat.fp8_round, (_f32(4, 8) * 300, "e5m2"), {"backend": "torch"}),
    Case("quantize_per_group", coat.quantize_per_group, (_f32(4, 32),), {"backend": "torch"}),
    Case("expand_quantize", coat.expand_quantize, (_f32(300),), {"backend": "torch"}),
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


def _kinds(result: Any) -> set[str]:
    """Kinds of the arrays in a result (itself or tuple items; dataclasses hold tensors)."""
    items = result if type(result) is tuple else (result,)
    return {"torch" if isinstance(r, torch.Tensor) else "numpy" for r in items
            if isinstance(r, torch.Tensor | np.ndarray)}


def _assert_same(a: Any, b: Any, where: str = "result") -> None:
    """Same structure, dtypes and bytes (tensors compared as their numpy values); other
    objects (a DuoKVCache) by type."""
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
    elif isinstance(a, tuple):
        assert type(b) is tuple and len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, int | float | str | type(None)):
        assert a == b, f"{where}: {a!r} != {b!r}"
    else:
        assert type(a) is type(b), where


# ---------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_numpy_and_torch_give_the_same_values_in_the_callers_kind(case: Case) -> None:
    from_numpy = case.fn(*case.args, **case.kwargs)
    from_torch = case.fn(*_torch_args(case.args), **case.kwargs)
    assert _kinds(from_numpy) <= {"numpy"}
    assert _kinds(from_torch) <= {"torch"}
    assert _kinds(from_numpy) or not _kinds(from_torch)
    _assert_same(from_numpy, from_torch)


MIXED = [c for c in CASES if sum(isinstance(a, np.ndarray) for a in c.args) >= 2]


@pytest.mark.parametrize("case", MIXED, ids=lambda c: c.id)
@pytest.mark.parametrize("first", ["torch", "numpy"])
def test_mixed_arguments_the_first_array_decides(case: Case, first: str) -> None:
    ref = case.fn(*case.args, **case.kwargs)
    flip = (lambda i: i == 0) if first == "torch" else (lambda i: i > 0)
    got = case.fn(*_torch_args(case.args, flip), **case.kwargs)
    assert _kinds(got) <= {first}
    _assert_same(ref, got)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
@pytest.mark.parametrize("bad", [[[1, 2], [3, 4]], "abc"], ids=["list", "str"])
def test_other_types_are_rejected_by_name(case: Case, bad: Any) -> None:
    index = next(i for i, a in enumerate(case.args) if isinstance(a, np.ndarray))
    name = list(inspect.signature(case.fn).parameters)[index]
    args = (*case.args[:index], bad, *case.args[index + 1:])
    with pytest.raises(TypeError, match=rf"^{name} must be a numpy array or a torch tensor, "
                                        rf"got {type(bad).__name__}$") as info:
        case.fn(*args, **case.kwargs)
    assert isinstance(info.value, ValueError)  # sw's usual input error, too


def test_w4a4_linear_takes_numpy() -> None:
    """The bug report's case: an ndarray in, an ndarray out, the tensor path's values."""
    x = _f32(3, 64)
    y = w4a4_linear(x, LAYER)
    assert isinstance(y, np.ndarray) and y.dtype == np.float32 and y.shape == (3, 8)
    np.testing.assert_array_equal(y, w4a4_linear(torch.from_numpy(x), LAYER).numpy())


def test_retrieval_flags_may_be_an_array() -> None:
    got = duo_attention(Q, K, V, np.array([True, False]), 1, 2, backend="torch")
    np.testing.assert_array_equal(got, duo_attention(Q, K, V, **DUO, backend="torch"))
