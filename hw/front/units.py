"""Workload units: the fixed-point units an architecture builds next to its GEMM array.

An architecture's optional ``units:`` section (:class:`UnitsSpec`) says which units exist and
how wide they are; what they compute at run time (shifts, multipliers, output widths, addresses)
is left to the program. Each unit's arithmetic is defined bit-exactly by a golden model, which
the unit hands its parameters (:meth:`SoftmaxUnit.golden_config`, :meth:`DequantUnit.golden_spec`,
:meth:`NormalizerUnit.golden_params`)::

    units:
      operand_relu: true     # max(x, 0) on the scratchpad write path of mvin (Sana's ReLU
                             # linear attention: golden.linear_attention_fixed's kr, qr)
      requant:    {lanes: 16, mult_bits: 16}
      softmax:    {lanes: 16, in_frac_bits: 8, log2e_bits: 16, t_frac_bits: 16, table_bits: 5,
                   exp_bits: 16, out_frac_bits: 15, interpolate: true, weight_bits: 8}
      normalizer: {lanes: 16, den_bits: 16, recip_frac_bits: 24, out_frac_bits: 8}
      dequant:    {lanes: 16, group: 64, mant_bits: 16, guard_bits: 2, acc_bits: 48,
                   lowrank: true}
      quantizer:  {lanes: 16, group: 64}
      kv_cache:   {descriptors: 8}

* ``requant``: ``x -> saturate(round_shift_right(x * mult, shift), bits)`` on accumulator
  elements (``golden.fixed_point``), ``mult`` an unsigned ``mult_bits`` multiplier; also a
  max-|x| reduction giving a power-of-two shift.
* ``softmax``: :func:`golden.softmax_fixed.softmax_fixed` row-wise over accumulator logits
  (its exponentials ``e``, or the probabilities); each weight is written back as a signed
  ``weight_bits`` A operand of the P.V GEMM (:class:`SoftmaxUnit`).
* ``normalizer``: stage 3 of :func:`golden.linear_attention_fixed.linear_attention_int`
  (num / den through a normalized reciprocal), its signed ``8 + out_frac_bits``-bit output
  landing in accumulator elements.
* ``dequant``: :func:`golden.group_dequant.accumulate_groups`, the W4A4 per-group
  scale-accumulate of ``group``-element int4 x (u)int4 dots; ``lowrank``: the SVDQuant
  low-rank branch adds into the same accumulator.
* ``quantizer``: :func:`golden.svdquant_ops.quantize_int4`, per ``group`` elements (or
  :func:`golden.svdquant_fixed.quantize_symmetric` per row, A-bit codes).
* ``kv_cache``: ``descriptors`` persistent address generators, each a sink / recent / write
  pointer triple walking :func:`golden.kv_cache.ring_buffer_address` (or a linear buffer).

Every unit is optional; a unit given as a mapping may omit fields (the defaults above, equal to
golden's); ``true`` means all defaults, ``false`` or absence no unit. Every field is checked on
construction and a SpecError names it as YAML spells it (``units.softmax.table_bits``) with its
value; the checks against the array and memories are :class:`~hw.front.arch.ArchSpec`'s.

Layer: hw.front, the planning layer (plain Python; golden is imported only to check or hand
over a present unit's parameters).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from .spec_model import MAX_OPERAND_BITS, SpecError
from .yaml_fields import check_keys, is_int, mapping

if TYPE_CHECKING:
    from golden.attention_fixed import AttentionFixedConfig
    from golden.group_dequant import GroupDequantSpec
    from golden.softmax_fixed import SoftmaxFixedConfig

__all__ = ["MAX_DESCRIPTORS", "MAX_GROUP", "MAX_LANES", "MAX_MULT_BITS", "UNIT_NAMES",
           "DequantUnit", "KvCacheUnit",
           "NormalizerUnit", "QuantizerUnit", "RequantUnit", "SoftmaxUnit", "UnitsSpec",
           "dequant_dot_bits", "units_from_dict"]

#: the most lanes (elements per cycle) a unit may have; an architecture bounds them further by
#: its accumulator rows.
MAX_LANES = 1024
#: the largest quantization group (elements sharing one scale).
MAX_GROUP = 8192
#: the most KV-cache address descriptors.
MAX_DESCRIPTORS = 256
#: the most output rows a dequantizer holds (a unit command's rows field is 12 bits)
MAX_DEQUANT_ROWS = 4095
#: the widest requant multiplier.
MAX_MULT_BITS = 32

T = TypeVar("T")


class _Unit:
    """Field checks and the YAML mapping shared by the unit dataclasses."""

    NAME: ClassVar[str]

    def _path(self, field: str | None = None) -> str:
        return f"units.{self.NAME}" + (f".{field}" if field else "")

    def _ints(self, *checks: tuple[str, int | None, int | None]) -> None:
        """Each ``(field, lo, hi)`` is an int (not a bool) in ``lo..hi`` (None: any)."""
        for name, lo, hi in checks:
            v = getattr(self, name)
            if not is_int(v):
                raise SpecError(f"{self._path(name)} must be an integer, got {v!r}")
            if (lo is not None and v < lo) or (hi is not None and v > hi):
                raise SpecError(f"{self._path(name)} must be an integer in {lo}..{hi}, "
                                f"got {v!r}")

    def _bools(self, *names: str) -> None:
        for name in names:
            v = getattr(self, name)
            if not isinstance(v, bool):
                raise SpecError(f"{self._path(name)} must be true or false, got {v!r}")

    def _golden(self, build: Callable[[], T], context: str = "") -> T:
        """``build()``, its ValueError a SpecError naming the field golden complains about
        (a message about no one field gets ``context`` after it)."""
        try:
            return build()
        except ValueError as exc:
            msg = str(exc)
            for f in fields(self):
                if re.match(rf"{f.name}\b", msg):
                    raise SpecError(self._path() + "." + msg) from None
            raise SpecError(f"{self._path()}: {msg}{context}") from None

    def to_dict(self) -> dict[str, Any]:
        """The unit as its YAML mapping (every field)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class RequantUnit(_Unit):
    """``saturate(round_shift_right(x * mult, shift), bits)`` on ``lanes`` accumulator elements
    per cycle, ``mult`` unsigned of ``mult_bits``; a max-|x| reduction gives a power-of-two
    shift. ``shift`` and ``bits`` are run-time operands."""

    NAME: ClassVar[str] = "requant"
    lanes: int = 16
    mult_bits: int = 16

    def __post_init__(self) -> None:
        self._ints(("lanes", 1, MAX_LANES), ("mult_bits", 2, MAX_MULT_BITS))


_SOFTMAX_GOLDEN = ("in_frac_bits", "log2e_bits", "t_frac_bits", "table_bits", "exp_bits",
                   "out_frac_bits")


@dataclass(frozen=True)
class SoftmaxUnit(_Unit):
    """:func:`golden.softmax_fixed.softmax_fixed` over rows of accumulator logits, ``lanes``
    elements per cycle; its fields but ``lanes`` and ``weight_bits`` are
    :class:`~golden.softmax_fixed.SoftmaxFixedConfig`'s (same defaults, same ranges).
    ``weight_bits``: the signed width of each weight as it is written back for the P.V GEMM,
    an A operand (at most the A type's bits): ``w = min(round_shift_right(e, exp_bits -
    (weight_bits - 1)), 2**(weight_bits - 1) - 1)``, so ``weight_bits - 1 <= exp_bits``
    (deferred normalization as in golden.attention_fixed)."""

    NAME: ClassVar[str] = "softmax"
    lanes: int = 16
    in_frac_bits: int = 8
    log2e_bits: int = 16
    t_frac_bits: int = 16
    table_bits: int = 5
    exp_bits: int = 16
    out_frac_bits: int = 15
    interpolate: bool = True
    weight_bits: int = 8

    def __post_init__(self) -> None:
        self._ints(("lanes", 1, MAX_LANES), ("weight_bits", 2, MAX_OPERAND_BITS),
                   *((name, None, None) for name in _SOFTMAX_GOLDEN))
        self._bools("interpolate")
        self.golden_config()
        if self.weight_bits - 1 > self.exp_bits:
            raise SpecError(f"{self._path('weight_bits')} = {self.weight_bits} needs exp_bits "
                            f">= {self.weight_bits - 1}, got {self.exp_bits}")

    def golden_config(self) -> SoftmaxFixedConfig:
        """The golden model's configuration of this unit."""
        from golden.softmax_fixed import SoftmaxFixedConfig

        kw = {name: getattr(self, name) for name in _SOFTMAX_GOLDEN}
        return self._golden(lambda: SoftmaxFixedConfig(**kw, interpolate=self.interpolate))

    def attention_config(self) -> AttentionFixedConfig:
        """:class:`golden.attention_fixed.AttentionFixedConfig` of the weights this unit
        writes (the softmax and ``weight_bits``; the other fields golden's defaults)."""
        from golden.attention_fixed import AttentionFixedConfig

        return AttentionFixedConfig(softmax=self.golden_config(), weight_bits=self.weight_bits)


@dataclass(frozen=True)
class NormalizerUnit(_Unit):
    """Stage 3 of :func:`golden.linear_attention_fixed.linear_attention_int`: ``num / den``
    through a ``den_bits`` normalized reciprocal with ``recip_frac_bits`` fractional bits, out
    signed ``8 + out_frac_bits`` bits; ``lanes`` outputs per cycle. Ranges are golden's:
    den_bits 2..30, recip_frac_bits 0..53 - den_bits, out_frac_bits 0..recip_frac_bits +
    den_bits."""

    NAME: ClassVar[str] = "normalizer"
    #: widths of the datapath's inputs: a numerator (signed), a denominator (unsigned)
    NUM_BITS: ClassVar[int] = 48
    DEN_IN_BITS: ClassVar[int] = 48
    lanes: int = 16
    den_bits: int = 16
    recip_frac_bits: int = 24
    out_frac_bits: int = 8

    def __post_init__(self) -> None:
        self._ints(("lanes", 1, MAX_LANES), ("den_bits", None, None),
                   ("recip_frac_bits", None, None), ("out_frac_bits", None, None))
        from golden.linear_attention_fixed import _check_params

        self._golden(lambda: _check_params(self.out_frac_bits, self.den_bits,
                                           self.recip_frac_bits))

    def golden_params(self) -> dict[str, int]:
        """Keyword arguments of :func:`golden.linear_attention_fixed.linear_attention_int`."""
        return {"out_frac_bits": self.out_frac_bits, "den_bits": self.den_bits,
                "recip_frac_bits": self.recip_frac_bits}

    @property
    def out_bits(self) -> int:
        """Signed width of an output (``8 + out_frac_bits``)."""
        return 8 + self.out_frac_bits


def dequant_dot_bits(group: int) -> int:
    """The signed width of one group's dot of int4 x uint4 (or int4 x int4) codes:
    ``|dot| <= 15 * 8 * group`` (14 bits for group 64, as golden.group_dequant says)."""
    return (120 * group).bit_length() + 1


@dataclass(frozen=True)
class DequantUnit(_Unit):
    """:func:`golden.group_dequant.accumulate_groups` on ``lanes`` outputs per cycle: group
    dots of ``group`` elements scaled by ``mant_bits`` mantissas into an ``acc_bits``
    accumulator (:class:`~golden.group_dequant.GroupDequantSpec`'s fields and ranges).
    ``dot_bits`` defaults to (and must be at least) :func:`dequant_dot_bits` of ``group``; give
    more when the low-rank term (``lowrank``: SVDQuant's L1 L2 branch adds into the same
    accumulator) goes through the dot register too. ``dataclasses.replace`` keeps ``dot_bits``:
    pass ``dot_bits=None`` with a new ``group`` to derive it again. ``rows``: the output rows
    the unit holds between a ``clear`` and its ``output`` (the depth of its state memory: per
    row and element, the accumulator and the largest exponent)."""

    NAME: ClassVar[str] = "dequant"
    lanes: int = 16
    group: int = 64
    rows: int = 64
    mant_bits: int = 16
    guard_bits: int = 2
    acc_bits: int = 48
    lowrank: bool = True
    dot_bits: int | None = None     #: None: dequant_dot_bits(group); an int after construction

    def __post_init__(self) -> None:
        self._ints(("lanes", 1, MAX_LANES), ("group", 1, MAX_GROUP), ("mant_bits", None, None),
                   ("guard_bits", None, None), ("acc_bits", None, None),
                   ("rows", 1, MAX_DEQUANT_ROWS))
        self._bools("lowrank")
        least = dequant_dot_bits(self.group)
        if self.dot_bits is None:
            object.__setattr__(self, "dot_bits", least)
        self._ints(("dot_bits", None, None))
        if self.dot_bits < least:
            raise SpecError(f"{self._path('dot_bits')} = {self.dot_bits} is too narrow for "
                            f"group {self.group}: |dot| <= 120 * {self.group} needs {least} bits")
        self.golden_spec()

    def golden_spec(self) -> GroupDequantSpec:
        """The golden model's widths of this unit."""
        from golden.group_dequant import GroupDequantSpec

        terms = (f" (dot_bits + mant_bits + guard_bits = {self.dot_bits} + {self.mant_bits} + "
                 f"{self.guard_bits})")
        return self._golden(lambda: GroupDequantSpec(self.mant_bits, self.dot_bits,
                                                     self.guard_bits, self.acc_bits), terms)


@dataclass(frozen=True)
class QuantizerUnit(_Unit):
    """:func:`golden.svdquant_ops.quantize_int4` per ``group`` elements (absmax, scale,
    codes), or :func:`golden.svdquant_fixed.quantize_symmetric` per row, ``lanes`` elements per
    cycle."""

    NAME: ClassVar[str] = "quantizer"
    lanes: int = 16
    group: int = 64

    def __post_init__(self) -> None:
        self._ints(("lanes", 1, MAX_LANES), ("group", 1, MAX_GROUP))


@dataclass(frozen=True)
class KvCacheUnit(_Unit):
    """``descriptors`` persistent address generators, each a sink / recent / write-pointer
    triple stepping :func:`golden.kv_cache.ring_buffer_address` (or a linear buffer)."""

    NAME: ClassVar[str] = "kv_cache"
    descriptors: int = 8

    def __post_init__(self) -> None:
        self._ints(("descriptors", 1, MAX_DESCRIPTORS))


_UNIT_TYPES: dict[str, type[_Unit]] = {c.NAME: c for c in (
    RequantUnit, SoftmaxUnit, NormalizerUnit, DequantUnit, QuantizerUnit, KvCacheUnit)}
#: the keys of a ``units:`` section, in the order :meth:`UnitsSpec.present` lists them.
UNIT_NAMES = ("operand_relu", *_UNIT_TYPES)


@dataclass(frozen=True)
class UnitsSpec:
    """The workload units of an architecture (module docstring): each ``None`` when absent."""

    operand_relu: bool = False
    requant: RequantUnit | None = None
    softmax: SoftmaxUnit | None = None
    normalizer: NormalizerUnit | None = None
    dequant: DequantUnit | None = None
    quantizer: QuantizerUnit | None = None
    kv_cache: KvCacheUnit | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.operand_relu, bool):
            raise SpecError(f"units.operand_relu must be true or false, got "
                            f"{self.operand_relu!r}")
        for name, cls in _UNIT_TYPES.items():
            unit = getattr(self, name)
            if unit is not None and not isinstance(unit, cls):
                raise SpecError(f"units.{name} must be a {cls.__name__} or None, got {unit!r}")

    def present(self) -> tuple[str, ...]:
        """The names of the present units (``operand_relu`` when on), in ``UNIT_NAMES``'s
        order."""
        return tuple(name for name in UNIT_NAMES
                     if (self.operand_relu if name == "operand_relu"
                         else getattr(self, name) is not None))

    def lanes(self) -> dict[str, int]:
        """The ``lanes`` of each present unit that has lanes."""
        return {name: unit.lanes for name in _UNIT_TYPES
                if (unit := getattr(self, name)) is not None and hasattr(unit, "lanes")}

    def with_lanes(self, lanes: int) -> UnitsSpec:
        """These units with every present unit that has lanes at ``lanes`` (validated again:
        ``SpecError`` for a width a unit rejects)."""
        return replace(self, **{name: replace(getattr(self, name), lanes=lanes)
                                for name in self.lanes()})

    def to_dict(self) -> dict[str, Any]:
        """The YAML mapping of the present units (``units_from_dict`` of it is ``self``)."""
        return {name: (True if name == "operand_relu" else getattr(self, name).to_dict())
                for name in self.present()}

    def describe(self) -> str:
        """One line per present unit, e.g. ``requant      lanes=16 mult_bits=16``."""
        lines = []
        for name, value in self.to_dict().items():
            text = ("on" if value is True
                    else " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}"
                                  for k, v in value.items()))
            lines.append(f"{name:<13}{text}")
        return "\n".join(lines)


def _unit(cls: type[_Unit], value: Any, where: str) -> _Unit | None:
    if value is True:
        return cls()
    if value is False:
        return None
    d = mapping(value, where, "its fields, or true for all defaults, false for none")
    known = [f.name for f in fields(cls)]
    check_keys(d, known, where)
    return cls(**d)


def units_from_dict(d: Any, where: str = "units") -> UnitsSpec:
    """Validate the YAML mapping of a ``units:`` section (None: no units); errors name
    ``<where>.<unit>.<field>`` and the value, unknown names get the closest known one."""
    if d is None:
        return UnitsSpec()
    d = mapping(d, where, f"with any of {', '.join(UNIT_NAMES)}")
    check_keys(d, UNIT_NAMES, where)
    try:
        units = {name: _unit(cls, d[name], f"{where}.{name}")
                 for name, cls in _UNIT_TYPES.items() if name in d}
        return UnitsSpec(d.get("operand_relu", False), **units)
    except SpecError as exc:
        msg = str(exc)
        if where != "units" and msg.startswith("units."):
            raise SpecError(where + msg[len("units"):]) from None
        raise
