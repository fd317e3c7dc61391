"""Operator records of the IR (see :mod:`mapping.ir`): one frozen dataclass per kind."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .ir_format import Format, check_int, get_format

__all__ = ["ELEMENTWISE_OPS", "OP_KINDS", "Attention", "Conv2d", "Elementwise", "Embedding",
           "KVCacheRead", "KVCacheWrite", "Linear", "LinearAttention", "Matmul", "Norm", "Op"]


class Op:
    """Base of the operator records: validation, defaults and the cost interface (zeros)."""

    kind = ""
    _POS: tuple[str, ...] = ()
    _NONNEG: tuple[str, ...] = ()
    _FMT: tuple[str, ...] = ()
    _BOOL: tuple[str, ...] = ()
    _DEFAULT_FMT: dict[str, str] = {}

    def __post_init__(self) -> None:
        cls = type(self).__name__
        if not isinstance(self.name, str) or not self.name or "." in self.name:
            raise ValueError(f"{cls}.name must be a non-empty string without '.', "
                             f"got {self.name!r}")
        for f in self._POS:
            check_int(cls, f, getattr(self, f), 1)
        for f in self._NONNEG:
            check_int(cls, f, getattr(self, f), 0)
        for f in self._BOOL:
            if not isinstance(getattr(self, f), bool):
                raise ValueError(f"{cls}.{f} must be a bool, got {getattr(self, f)!r}")
        for f, src in self._DEFAULT_FMT.items():
            if getattr(self, f) is None:
                object.__setattr__(self, f, getattr(self, src))
        for f in self._FMT:
            object.__setattr__(self, f, get_format(getattr(self, f), f"{cls}.{f}"))
        self._check()

    def _check(self) -> None:
        """Kind-specific constraints (after the generic field checks)."""

    def _fail(self, field: str, why: str) -> None:
        raise ValueError(f"{type(self).__name__}.{field} {why}, got {getattr(self, field)!r}")

    def _grouped(self, fmt_field: str, inner: int, dim: str) -> None:
        group = getattr(self, fmt_field).group
        if group and inner % group:
            raise ValueError(f"{type(self).__name__}.{fmt_field} {getattr(self, fmt_field).name} "
                             f"needs {dim} a multiple of {group}, got {inner}")

    macs = property(lambda self: 0, doc="Multiply-accumulates of one execution.")
    weight_params = property(lambda self: 0, doc="Parameters (logical weight elements).")
    weight_bytes = property(lambda self: 0, doc="Storage of the parameters.")
    resident_bytes = property(lambda self: 0, doc="State kept between executions.")
    vector_elements = property(lambda self: 0, doc="Elements through non-MAC hardware.")
    input_bytes = property(lambda self: 0, doc="Activation bytes read.")
    output_bytes = property(lambda self: 0, doc="Activation bytes written.")
    weight_read_bytes = property(lambda self: self.weight_bytes,
                                 doc="Weight bytes one execution reads.")

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., field: value}`` with formats by name and tuples as lists."""
        out: dict[str, Any] = {"kind": self.kind}
        for f in fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            out[f.name] = v.name if isinstance(v, Format) else list(v) if isinstance(
                v, tuple) else v
        return out


@dataclass(frozen=True)
class Linear(Op):
    """``Y[m, n] = X[m, k] W[n, k]^T (+ bias) + (X down^T) up^T`` (SVDQuant branch if rank > 0).

    macs = m k n + m rank (k + n). Weights: W in ``weight_fmt`` (groups along k), the branch's
    ``down`` (rank x k) and ``up`` (n x rank) in 16-bit, the bias (n) in 16-bit. The branch's
    intermediate (m x rank) is fused and not counted as traffic.
    """

    name: str
    m: int
    k: int
    n: int
    act_fmt: Format | str = "bf16"
    weight_fmt: Format | str = "bf16"
    out_fmt: Format | str = "bf16"
    rank: int = 0
    bias: bool = False
    kind = "linear"
    _POS, _NONNEG, _BOOL = ("m", "k", "n"), ("rank",), ("bias",)
    _FMT = ("act_fmt", "weight_fmt", "out_fmt")

    def _check(self) -> None:
        self._grouped("act_fmt", self.k, "k")
        self._grouped("weight_fmt", self.k, "k")
        self._grouped("out_fmt", self.n, "n")

    macs = property(lambda s: s.m * s.k * s.n + s.m * s.rank * (s.k + s.n))
    weight_params = property(lambda s: s.n * s.k + s.rank * (s.k + s.n) + s.n * s.bias)
    weight_bytes = property(lambda s: s.weight_fmt.nbytes(s.n * s.k, s.k)
                            + 2 * (s.rank * (s.k + s.n) + s.n * s.bias))
    input_bytes = property(lambda s: s.act_fmt.nbytes(s.m * s.k, s.k))
    output_bytes = property(lambda s: s.out_fmt.nbytes(s.m * s.n, s.n))


@dataclass(frozen=True)
class Matmul(Op):
    """Batched activation x activation product ``C[b, m, n] = A[b, m, k] B[b, k, n]``.

    macs = batch m k n; no weights; both operands read, grouped along k."""

    name: str
    batch: int
    m: int
    k: int
    n: int
    a_fmt: Format | str = "bf16"
    b_fmt: Format | str = "bf16"
    out_fmt: Format | str = "bf16"
    kind = "matmul"
    _POS, _FMT = ("batch", "m", "k", "n"), ("a_fmt", "b_fmt", "out_fmt")

    def _check(self) -> None:
        self._grouped("a_fmt", self.k, "k")
        self._grouped("b_fmt", self.k, "k")
        self._grouped("out_fmt", self.n, "n")

    macs = property(lambda s: s.batch * s.m * s.k * s.n)
    input_bytes = property(lambda s: s.a_fmt.nbytes(s.batch * s.m * s.k, s.k)
                           + s.b_fmt.nbytes(s.batch * s.k * s.n, s.k))
    output_bytes = property(lambda s: s.out_fmt.nbytes(s.batch * s.m * s.n, s.n))


@dataclass(frozen=True)
class Conv2d(Op):
    """2-D convolution, square ``kernel``, ``padding`` -1 = ``kernel // 2`` ("same" when odd).

    Output ``oh = (h + 2 pad - kernel) // stride + 1`` (``ow`` alike); macs = batch c_out oh ow
    (c_in / groups) kernel^2. Depthwise is this kind with ``groups == c_in == c_out``
    (:attr:`depthwise`). Bias (c_out) in 16-bit."""

    name: str
    batch: int
    c_in: int
    c_out: int
    h: int
    w: int
    kernel: int
    stride: int = 1
    groups: int = 1
    padding: int = -1
    act_fmt: Format | str = "bf16"
    weight_fmt: Format | str = "bf16"
    out_fmt: Format | str = "bf16"
    bias: bool = False
    kind = "conv2d"
    _POS = ("batch", "c_in", "c_out", "h", "w", "kernel", "stride", "groups")
    _FMT, _BOOL = ("act_fmt", "weight_fmt", "out_fmt"), ("bias",)

    def _check(self) -> None:
        check_int("Conv2d", "padding", self.padding, -1)
        if self.c_in % self.groups or self.c_out % self.groups:
            self._fail("groups", f"must divide c_in {self.c_in} and c_out {self.c_out}")
        if min(self.oh, self.ow) < 1:
            self._fail("kernel", f"leaves no output of a {self.h}x{self.w} input")
        self._grouped("weight_fmt", self.c_in // self.groups * self.kernel ** 2, "c_in k k")
        self._grouped("act_fmt", self.c_in, "c_in")
        self._grouped("out_fmt", self.c_out, "c_out")

    pad = property(lambda s: s.kernel // 2 if s.padding < 0 else s.padding)
    oh = property(lambda s: (s.h + 2 * s.pad - s.kernel) // s.stride + 1)
    ow = property(lambda s: (s.w + 2 * s.pad - s.kernel) // s.stride + 1)
    depthwise = property(lambda s: s.groups == s.c_in == s.c_out and s.groups > 1)
    _kk = property(lambda s: s.c_in // s.groups * s.kernel ** 2)
    macs = property(lambda s: s.batch * s.c_out * s.oh * s.ow * s._kk)
    weight_params = property(lambda s: s.c_out * s._kk + s.c_out * s.bias)
    weight_bytes = property(lambda s: s.weight_fmt.nbytes(s.c_out * s._kk, s._kk)
                            + 2 * s.c_out * s.bias)
    input_bytes = property(lambda s: s.act_fmt.nbytes(s.batch * s.c_in * s.h * s.w, s.c_in))
    output_bytes = property(lambda s: s.out_fmt.nbytes(s.batch * s.c_out * s.oh * s.ow,
                                                       s.c_out))


ELEMENTWISE_OPS: dict[str, int] = {
    "gelu": 1, "silu": 1, "relu": 1, "rope": 1, "modulate": 1, "quantize": 1, "softmax": 1,
    "copy": 1, "add": 2, "mul": 2, "gate": 2, "residual": 2, "cfg": 2}
"""Element-wise op names -> full-size operands read. ``gate``: ``a * silu(g)`` (SwiGLU,
GLUMBConv); ``residual``: ``x + g * y`` (adaLN gate, g per channel); ``modulate``:
``x (1 + scale) + shift``; ``cfg``: classifier-free guidance mix; ``quantize``: to ``out_fmt``."""


@dataclass(frozen=True)
class Elementwise(Op):
    """An element-wise ``op`` over ``elements`` outputs: reads ``inputs`` operands of that size
    in ``fmt`` (default: the op's arity), writes one in ``out_fmt`` (default ``fmt``); no MACs."""

    name: str
    op: str
    elements: int
    fmt: Format | str = "bf16"
    out_fmt: Format | str | None = None
    inputs: int = 0
    kind = "elementwise"
    _POS, _NONNEG, _FMT = ("elements",), ("inputs",), ("fmt", "out_fmt")
    _DEFAULT_FMT = {"out_fmt": "fmt"}

    def _check(self) -> None:
        if self.op not in ELEMENTWISE_OPS:
            self._fail("op", f"must be one of {sorted(ELEMENTWISE_OPS)}")
        if not self.inputs:
            object.__setattr__(self, "inputs", ELEMENTWISE_OPS[self.op])

    vector_elements = property(lambda s: s.elements)
    input_bytes = property(lambda s: s.inputs * s.fmt.nbytes(s.elements))
    output_bytes = property(lambda s: s.out_fmt.nbytes(s.elements))


@dataclass(frozen=True)
class Norm(Op):
    """LayerNorm (``norm="layer"``) or RMSNorm (``"rms"``) of ``tokens`` rows of ``features``.

    Affine parameters in ``fmt``: weight and bias (layer) or weight (rms); no MACs."""

    name: str
    norm: str
    tokens: int
    features: int
    fmt: Format | str = "bf16"
    affine: bool = True
    kind = "norm"
    _POS, _FMT, _BOOL = ("tokens", "features"), ("fmt",), ("affine",)

    def _check(self) -> None:
        if self.norm not in ("layer", "rms"):
            self._fail("norm", "must be 'layer' or 'rms'")

    weight_params = property(lambda s: s.affine * s.features * (2 if s.norm == "layer" else 1))
    weight_bytes = property(lambda s: s.fmt.nbytes(s.weight_params))
    vector_elements = property(lambda s: s.tokens * s.features)
    input_bytes = property(lambda s: s.fmt.nbytes(s.tokens * s.features))
    output_bytes = input_bytes


def _sum_min(lo: int, hi: int, cap: int | None) -> int:
    """``sum(min(t, cap) for t in range(lo, hi + 1))`` in closed form (cap None: no cap)."""
    top = hi if cap is None else min(hi, cap)
    below = (lo + top) * (top - lo + 1) // 2 if top >= lo else 0
    return below + (0 if cap is None else max(0, hi - max(lo, cap + 1) + 1) * cap)


@dataclass(frozen=True)
class Attention(Op):
    """Softmax attention; the ``q_tokens`` queries are the last of the ``kv_tokens`` positions.

    Query p (0-based, p >= kv - q) sees key j when ``j <= p`` (``causal``) and, with ``window =
    (sink, recent)``, ``j < sink or p - j < recent`` (DuoAttention's streaming heads): that is
    ``min(p + 1, sink + recent)`` keys. macs = batch q_heads head_dim (QK^T + PV = 2) x visible
    (query, key) pairs. Reads Q and the K, V rows of :attr:`keys_touched` keys; GQA: ``q_heads``
    a multiple of ``kv_heads``."""

    name: str
    batch: int
    q_heads: int
    kv_heads: int
    head_dim: int
    q_tokens: int
    kv_tokens: int
    causal: bool = False
    window: tuple[int, int] | None = None
    fmt: Format | str = "bf16"
    kv_fmt: Format | str | None = None
    kind = "attention"
    _POS = ("batch", "q_heads", "kv_heads", "head_dim", "q_tokens", "kv_tokens")
    _FMT, _BOOL, _DEFAULT_FMT = ("fmt", "kv_fmt"), ("causal",), {"kv_fmt": "fmt"}

    def _check(self) -> None:
        if self.q_heads % self.kv_heads:
            self._fail("q_heads", f"must be a multiple of kv_heads {self.kv_heads}")
        if self.causal and self.q_tokens > self.kv_tokens:
            self._fail("q_tokens", f"must be <= kv_tokens {self.kv_tokens} when causal")
        if self.window is not None:
            w = self.window
            if not isinstance(w, (tuple, list)) or len(w) != 2 or not self.causal:
                self._fail("window", "must be (sink, recent) on a causal attention")
            object.__setattr__(self, "window", (check_int("Attention", "window sink", w[0], 0),
                                                check_int("Attention", "window recent", w[1], 1)))

    @property
    def visible_pairs(self) -> int:
        """(query, key) pairs the mask lets through, per head and batch element."""
        if not self.causal:
            return self.q_tokens * self.kv_tokens
        cap = None if self.window is None else sum(self.window)
        return _sum_min(self.kv_tokens - self.q_tokens + 1, self.kv_tokens, cap)

    @property
    def keys_touched(self) -> int:
        """Keys some query sees: all, less the gap between the sinks and the oldest window."""
        if self.window is None:
            return self.kv_tokens
        sink, recent = self.window
        return self.kv_tokens - max(0, self.kv_tokens - self.q_tokens - recent + 1 - sink)

    macs = property(lambda s: 2 * s.batch * s.q_heads * s.head_dim * s.visible_pairs)
    vector_elements = property(lambda s: s.batch * s.q_heads * s.visible_pairs)
    input_bytes = property(lambda s: s.fmt.nbytes(s.batch * s.q_tokens * s.q_heads * s.head_dim)
                           + s.kv_fmt.nbytes(2 * s.batch * s.keys_touched * s.kv_heads
                                             * s.head_dim))
    output_bytes = property(lambda s: s.fmt.nbytes(s.batch * s.q_tokens * s.q_heads
                                                   * s.head_dim))


@dataclass(frozen=True)
class LinearAttention(Op):
    """Sana's LiteLA (ReLU kernel, non-causal) per head of ``head_dim`` d over ``tokens`` N.

    MACs per head: ``v^T k`` N d^2, ``sum k`` N d (the ones-row of padded v), ``vk q`` N d^2 and
    the denominator N d: 2 N d (d + 1). Vector work: N d divisions."""

    name: str
    batch: int
    heads: int
    head_dim: int
    tokens: int
    fmt: Format | str = "bf16"
    kind = "linear_attention"
    _POS, _FMT = ("batch", "heads", "head_dim", "tokens"), ("fmt",)

    _bhn = property(lambda s: s.batch * s.heads * s.tokens)
    macs = property(lambda s: 2 * s._bhn * s.head_dim * (s.head_dim + 1))
    vector_elements = property(lambda s: s._bhn * s.head_dim)
    input_bytes = property(lambda s: s.fmt.nbytes(3 * s._bhn * s.head_dim))
    output_bytes = property(lambda s: s.fmt.nbytes(s._bhn * s.head_dim))


@dataclass(frozen=True)
class KVCacheWrite(Op):
    """Append K and V of ``tokens`` new tokens (``in_fmt`` -> cache ``fmt``); the cache then
    holds ``cache_tokens`` per sequence: ``resident_bytes`` = its K and V in ``fmt``."""

    name: str
    batch: int
    tokens: int
    kv_heads: int
    head_dim: int
    cache_tokens: int
    fmt: Format | str = "bf16"
    in_fmt: Format | str | None = None
    kind = "kv_cache_write"
    _POS = ("batch", "tokens", "kv_heads", "head_dim", "cache_tokens")
    _FMT, _DEFAULT_FMT = ("fmt", "in_fmt"), {"in_fmt": "fmt"}

    def _check(self) -> None:
        if self.cache_tokens < self.tokens:
            self._fail("cache_tokens", f"must be >= tokens {self.tokens}")

    _row = property(lambda s: 2 * s.batch * s.kv_heads * s.head_dim)
    input_bytes = property(lambda s: s.in_fmt.nbytes(s._row * s.tokens))
    output_bytes = property(lambda s: s.fmt.nbytes(s._row * s.tokens))
    resident_bytes = property(lambda s: s.fmt.nbytes(s._row * s.cache_tokens))


@dataclass(frozen=True)
class KVCacheRead(Op):
    """Read K and V of ``tokens`` cached tokens (``fmt``) into ``out_fmt`` (e.g. dequantize).
    An :class:`Attention` already counts its own K, V reads; use this only for a separate pass."""

    name: str
    batch: int
    tokens: int
    kv_heads: int
    head_dim: int
    fmt: Format | str = "bf16"
    out_fmt: Format | str | None = None
    kind = "kv_cache_read"
    _POS = ("batch", "tokens", "kv_heads", "head_dim")
    _FMT, _DEFAULT_FMT = ("fmt", "out_fmt"), {"out_fmt": "fmt"}

    _n = property(lambda s: 2 * s.batch * s.kv_heads * s.head_dim * s.tokens)
    input_bytes = property(lambda s: s.fmt.nbytes(s._n))
    output_bytes = property(lambda s: s.out_fmt.nbytes(s._n))


@dataclass(frozen=True)
class Embedding(Op):
    """Token embedding lookup: a ``vocab`` x ``dim`` table in ``fmt``; one execution reads the
    ``tokens`` rows it gathers (int32 ids in, ``tokens`` x ``dim`` out); no MACs."""

    name: str
    tokens: int
    vocab: int
    dim: int
    fmt: Format | str = "bf16"
    kind = "embedding"
    _POS, _FMT = ("tokens", "vocab", "dim"), ("fmt",)

    weight_params = property(lambda s: s.vocab * s.dim)
    weight_bytes = property(lambda s: s.fmt.nbytes(s.vocab * s.dim, s.dim))
    weight_read_bytes = property(lambda s: s.fmt.nbytes(s.tokens * s.dim, s.dim))
    input_bytes = property(lambda s: 4 * s.tokens)
    output_bytes = property(lambda s: s.fmt.nbytes(s.tokens * s.dim, s.dim))


OP_KINDS: dict[str, type[Op]] = {c.kind: c for c in (
    Linear, Matmul, Conv2d, Elementwise, Norm, Attention, LinearAttention, KVCacheWrite,
    KVCacheRead, Embedding)}
"""Operator kind name -> class (for :func:`mapping.ir.op_from_dict`)."""
