"""Architecture specs: an accelerator generated once, then running every layer by program.

An architecture fixes what the hardware is (the FU array and its arithmetic, the dataflows
the array can run, the scratchpad and accumulator memories, the DRAM port, the clock); the
problem (extents, addresses, strides, tile sizes) is left to run time. The dataflows are
space-time maps of one tile of the canonical GEMM ``C[i, j] += A[i, k] * B[k, j]`` (A the
input, B the weights, C the accumulator); convolutions are lowered to it by the kernel
library. In YAML (``examples/arch/``)::

    name: gemmini_like
    array: [16, 16]
    types: {A: int8, B: int8, C: int32}
    dataflows:
      - {name: output_stationary, space: [i, j], time: "i + j + k"}
      - {name: weight_stationary, space: [k, j], time: "i + j + k"}
    scratchpad: {capacity_kib: 256, banks: 4, row_bytes: 16}
    accumulator: {capacity_kib: 64, banks: 2, row_bytes: 64}
    dram: {bytes_per_cycle: 16, latency_cycles: 100}
    clock_mhz: 1000
    pad_to: 16            # operand extents rounded up to multiples of 16 (1: no padding)
    units:                # optional: the fixed-point workload units next to the array
      operand_relu: true                    # ReLU on mvin's scratchpad writes
      softmax: {lanes: 16, weight_bits: 8}  # omitted fields take golden's defaults
      dequant: true                         # all defaults

The ``units:`` section (:mod:`hw.front.units`; absent: no units) declares the requant,
softmax, normalizer, dequant, quantizer and KV-cache units and their widths; their arithmetic
is the golden models' (:mod:`golden.softmax_fixed`, :mod:`golden.group_dequant`,
:mod:`golden.linear_attention_fixed`, :func:`golden.svdquant_ops.quantize_int4`,
:func:`golden.kv_cache.ring_buffer_address`). Each unit's ``lanes`` divides an accumulator
row's elements, softmax weights fit the A type, normalizer outputs fit the C type,
quantization groups are whole array edges (:meth:`ArchSpec._check_units`).

Every dataflow is checked by planning a full-array tile with it (:func:`hw.front.plan.
plan_array`), and all of them must share one array (:func:`hw.front.fusion.check_fusable`),
so an architecture that loads is one the generator can build.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from golden.int_types import IntType, int_type

from .fusion import check_fusable
from .plan import ArrayPlan, plan_array
from .spec_model import DataflowSpec, DesignSpec, OpSpec, SpecError, TensorSpec, close_hint
from .spec_yaml import parse_affine
from .units import UnitsSpec, units_from_dict
from .yaml_fields import as_list, check_keys, is_int, mapping, positive_int, read_yaml, require

__all__ = ["GEMM_DIMS", "ArchDataflow", "ArchSpec", "DramSpec", "MemorySpec", "arch_from_dict",
           "load_arch"]

#: dims of the canonical GEMM every dataflow of an architecture maps.
GEMM_DIMS = ("i", "j", "k")
_ACCESS = {"A": ((1, 0, 0), (0, 0, 1)), "B": ((0, 0, 1), (0, 1, 0)), "C": ((1, 0, 0), (0, 1, 0))}
_PROBE_TIME = 4         # extent of a dim the array does not span, in the probe tile


@dataclass(frozen=True)
class MemorySpec:
    """An on-chip SRAM: ``capacity_bytes`` in ``banks`` equal banks of ``row_bytes`` rows."""

    capacity_bytes: int
    banks: int
    row_bytes: int

    def __post_init__(self) -> None:
        for name in ("capacity_bytes", "banks", "row_bytes"):
            positive_int(getattr(self, name), name)
        if self.capacity_bytes % (self.banks * self.row_bytes):
            raise SpecError(f"capacity {self.capacity_bytes} B is not a whole number of "
                            f"{self.banks} banks of {self.row_bytes}-byte rows")

    @property
    def rows_per_bank(self) -> int:
        return self.capacity_bytes // (self.banks * self.row_bytes)

    @property
    def rows(self) -> int:
        """Rows of the whole memory (every bank)."""
        return self.capacity_bytes // self.row_bytes


@dataclass(frozen=True)
class DramSpec:
    """The external memory port: ``bytes_per_cycle`` sustained, ``latency_cycles`` from a
    request to its first data."""

    bytes_per_cycle: int
    latency_cycles: int

    def __post_init__(self) -> None:
        positive_int(self.bytes_per_cycle, "bytes_per_cycle")
        if not is_int(self.latency_cycles) or self.latency_cycles < 0:
            raise SpecError(f"latency_cycles must be an integer >= 0, got "
                            f"{self.latency_cycles!r}")


@dataclass(frozen=True)
class ArchDataflow:
    """A space-time map of one GEMM tile: ``space`` rows and ``time`` over (i, j, k)."""

    name: str
    space: tuple[tuple[int, ...], ...]
    time: tuple[int, ...]


@dataclass(frozen=True)
class ArchSpec:
    """An accelerator architecture (see the module docstring); valid on construction."""

    name: str
    array: tuple[int, ...]
    types: tuple[IntType, IntType, IntType]          #: A, B, C
    dataflows: tuple[ArchDataflow, ...]
    scratchpad: MemorySpec
    accumulator: MemorySpec
    dram: DramSpec
    clock_mhz: float
    pad_to: int = 1
    units: UnitsSpec = UnitsSpec()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpecError(f"name must be an identifier, got {self.name!r}")
        if not isinstance(self.clock_mhz, int | float) or isinstance(self.clock_mhz, bool) \
                or not self.clock_mhz > 0:
            raise SpecError(f"clock_mhz must be a positive number, got {self.clock_mhz!r}")
        positive_int(self.pad_to, "pad_to")
        if not self.dataflows:
            raise SpecError("dataflows: an architecture needs at least one dataflow")
        names = [d.name for d in self.dataflows]
        if len(set(names)) != len(names):
            raise SpecError(f"dataflows need distinct names, got {names}")
        self._check_rows()
        self._check_units()
        plans = [self.probe_plan(d.name) for d in self.dataflows]
        check_fusable(plans)

    def _check_rows(self) -> None:
        """A scratchpad row feeds one array edge of operands, an accumulator row takes one
        edge of results, per cycle."""
        a, b, c = self.types
        edge = max(self.array)
        for mem, bits, what in ((self.scratchpad, max(a.bits, b.bits), "operands"),
                                (self.accumulator, c.bits, "accumulators")):
            if mem.row_bytes * 8 < edge * bits:
                raise SpecError(f"a row of {mem.row_bytes} bytes holds fewer than {edge} "
                                f"{bits}-bit {what} (one array edge)")

    def _check_units(self) -> None:
        """The units fit the array and memories: each unit's lanes divide an accumulator
        row's elements, softmax weights fit the A type, normalizer outputs and requant
        products fit C (and 64 bits), quantization groups are whole array edges."""
        u = self.units
        if not isinstance(u, UnitsSpec):
            raise SpecError(f"units must be a UnitsSpec, got {u!r}")
        a, _, c = self.types
        row = self.accumulator.row_bytes * 8 // c.bits
        for name, lanes in u.lanes().items():
            if lanes > row or row % lanes:
                raise SpecError(f"units.{name}.lanes = {lanes} must divide the {row} {c} "
                                f"elements of an accumulator row ({self.accumulator.row_bytes}"
                                f" bytes)")
        if u.softmax and u.softmax.weight_bits > a.bits:
            raise SpecError(f"units.softmax.weight_bits = {u.softmax.weight_bits} exceeds the "
                            f"{a.bits} bits of the A operand type {a}")
        if u.normalizer and u.normalizer.out_bits > c.bits:
            raise SpecError(f"units.normalizer.out_frac_bits = {u.normalizer.out_frac_bits}: "
                            f"its 8 + {u.normalizer.out_frac_bits} = {u.normalizer.out_bits}-bit"
                            f" outputs exceed the {c.bits} bits of the C type {c}")
        if u.requant and u.requant.mult_bits + c.bits > 64:
            raise SpecError(f"units.requant.mult_bits = {u.requant.mult_bits}: a {c.bits}-bit "
                            f"{c} element times it exceeds 64 bits")
        edge = max(self.array)
        for unit in (u.dequant, u.quantizer):
            if unit and unit.group % edge:
                raise SpecError(f"units.{unit.NAME}.group = {unit.group} is not a multiple of "
                                f"the array edge {edge}")

    @property
    def pes(self) -> int:
        """FUs of the array (MACs per cycle at full utilization)."""
        n = 1
        for a in self.array:
            n *= a
        return n

    @property
    def dram_gbytes_per_s(self) -> float:
        return self.dram.bytes_per_cycle * self.clock_mhz / 1000

    def dataflow(self, name: str) -> ArchDataflow:
        """The dataflow called ``name``; a SpecError naming the known ones otherwise."""
        for d in self.dataflows:
            if d.name == name:
                return d
        names = [d.name for d in self.dataflows]
        raise SpecError(f"architecture {self.name!r} has no dataflow {name!r} (dataflows: "
                        f"{', '.join(names)}){close_hint(name, names)}")

    def spatial_extents(self, name: str) -> tuple[int, ...]:
        """Per GEMM dim (i, j, k), the extent a tile can give it on the array under dataflow
        ``name``: the size of the (smallest) array axis it is mapped to, or 0 when the dim
        is only in time (its tile extent is then chosen at run time)."""
        d = self.dataflow(name)
        out = []
        for dim in range(len(GEMM_DIMS)):
            sizes = [a for row, a in zip(d.space, self.array, strict=True) if row[dim]]
            out.append(min(sizes) if sizes else 0)
        return tuple(out)

    def tile_spec(self, name: str, tile: tuple[int, int, int]) -> DesignSpec:
        """One GEMM tile of extents ``tile`` (i, j, k) under dataflow ``name``, as a design
        spec of today's generator (the problem is the tile)."""
        d = self.dataflow(name)
        tensors = tuple(TensorSpec(t, _ACCESS[t], (0, 0),
                                   "accumulate" if t == "C" else "input", dtype)
                        for t, dtype in zip("ABC", self.types, strict=True))
        op = OpSpec(GEMM_DIMS, tuple(tile), tensors)
        flow = DataflowSpec(d.name, d.space, d.time, tuple(tile), GEMM_DIMS)
        return DesignSpec(self.name, op, self.array, flow)

    def probe_plan(self, name: str) -> ArrayPlan:
        """The plan of a full-array tile under dataflow ``name`` (what proves it buildable)."""
        tile = tuple(e or _PROBE_TIME for e in self.spatial_extents(name))
        try:
            return plan_array(self.tile_spec(name, tile))
        except SpecError as exc:
            raise SpecError(f"dataflow {name!r}: {exc}") from None


_TOP_KEYS = ("name", "array", "types", "dataflows", "scratchpad", "accumulator", "dram",
             "clock_mhz", "pad_to", "units")
_MEMORY_KEYS = ("capacity_kib", "capacity_bytes", "banks", "row_bytes")


def _memory(d: Any, where: str) -> MemorySpec:
    d = mapping(d, where, "capacity_kib or capacity_bytes, banks, row_bytes")
    check_keys(d, _MEMORY_KEYS, where)
    if ("capacity_kib" in d) == ("capacity_bytes" in d):
        raise SpecError(f"{where}: give exactly one of capacity_kib and capacity_bytes")
    size = (positive_int(d["capacity_kib"], f"{where}.capacity_kib") * 1024
            if "capacity_kib" in d else d["capacity_bytes"])
    try:
        return MemorySpec(size, require(d, "banks", where), require(d, "row_bytes", where))
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None


def _dataflow(n: int, d: Any) -> ArchDataflow:
    where = f"dataflows[{n}]"
    d = mapping(d, where, "with name, space and time")
    check_keys(d, ("name", "space", "time"), where)
    name = require(d, "name", where)
    if not isinstance(name, str) or not name.isidentifier():
        raise SpecError(f"{where}.name must be an identifier, got {name!r}")
    space = []
    for r, e in enumerate(as_list(require(d, "space", where), f"{where}.space", "[i, j]")):
        coef, const = parse_affine(e, GEMM_DIMS, f"{where}.space[{r}]")
        if const:
            raise SpecError(f"{where}.space[{r}]: constant offsets are not allowed, got {e!r}")
        space.append(coef)
    time, const = parse_affine(require(d, "time", where), GEMM_DIMS, f"{where}.time")
    if const:
        raise SpecError(f"{where}.time: constant offsets are not allowed, got {d['time']!r}")
    return ArchDataflow(name, tuple(space), time)


def arch_from_dict(d: Any) -> ArchSpec:
    """Validate a parsed YAML mapping into an :class:`ArchSpec` (errors name the field)."""
    if d is None:
        raise SpecError("the architecture is empty")
    d = mapping(d, "an architecture", "with name, array, types, dataflows, memories, dram")
    check_keys(d, _TOP_KEYS)
    array = as_list(require(d, "array", "architecture"), "array", "[16, 16]")
    if len(array) != 2:
        raise SpecError(f"array must be two positive sizes (rows, columns), got {array!r}")
    array = tuple(positive_int(a, f"array[{n}]") for n, a in enumerate(array))
    types_d = mapping(require(d, "types", "architecture"), "types", "A, B and C type names")
    check_keys(types_d, ("A", "B", "C"), "types")
    types = []
    for t in "ABC":
        try:
            types.append(int_type(require(types_d, t, "types")))
        except (ValueError, TypeError) as exc:
            raise SpecError(f"types.{t}: {exc}") from None
    flows = as_list(require(d, "dataflows", "architecture"), "dataflows",
                    "[{name: os, space: [i, j], time: 'i + j + k'}]")
    dram_d = mapping(require(d, "dram", "architecture"), "dram",
                     "bytes_per_cycle and latency_cycles")
    check_keys(dram_d, ("bytes_per_cycle", "latency_cycles"), "dram")
    try:
        dram = DramSpec(require(dram_d, "bytes_per_cycle", "dram"),
                        require(dram_d, "latency_cycles", "dram"))
    except SpecError as exc:
        raise SpecError(f"dram.{exc}") from None
    return ArchSpec(require(d, "name", "architecture"), array, tuple(types),
                    tuple(_dataflow(n, f) for n, f in enumerate(flows)),
                    _memory(require(d, "scratchpad", "architecture"), "scratchpad"),
                    _memory(require(d, "accumulator", "architecture"), "accumulator"),
                    dram, require(d, "clock_mhz", "architecture"), d.get("pad_to", 1),
                    units_from_dict(d.get("units")))


def load_arch(path: str | Path) -> ArchSpec:
    """Read an architecture YAML file; every failure one SpecError line naming the file."""
    return read_yaml(path, arch_from_dict, "architecture")
