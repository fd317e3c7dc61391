"""What the generated accelerator of an architecture is: the figures its RTL
(:mod:`hw.rtl.accel`) and its cycle model (:mod:`hw.front.accel_timing`) are both built from.

A dataflow of the architecture runs on the accelerator as its *class*: the GEMM dim it maps to
time only (``"k"``: output-stationary, the operands stream and results drain from the FUs;
``"i"``: weight-stationary and spatial reduction, B stays in the array and A's rows stream;
``"j"``: input-stationary, A stays and B's columns stream). The other two dims span the
array's two axes, so the array must be square (every dim on it takes the edge ``E``).

Supported architectures (else :class:`~hw.front.spec_model.SpecError` naming the reason): a
square array; A and B of one type; 4, 8, 16 or 32-bit elements; every dataflow with exactly
one time-only dim and each array axis one dim; the DRAM beat equal to a scratchpad row
(``dram.bytes_per_cycle == scratchpad.row_bytes``); an accumulator row a whole number of beats.

Layer: hw.front, the planning layer (plain Python, no Amaranth).
"""

from __future__ import annotations

from dataclasses import dataclass

from .arch import GEMM_DIMS, ArchSpec
from .spec_model import SpecError

__all__ = ["CLASSES", "RTL_UNIT_MODES", "AccelParams", "accel_params"]

#: the time-only GEMM dim of each class, in the order the RTL numbers them.
CLASSES = ("k", "i", "j")
_WIDTHS = (4, 8, 16, 32)
#: moves the DMA holds at once (dispatched, not finished).
DMA_QUEUE = 8
#: the workload-unit commands (unit -> modes) the generated accelerator executes; the
#: reference machine runs every command of :data:`hw.front.isa.UNIT_MODES`.
RTL_UNIT_MODES: dict[str, tuple[str, ...]] = {
    "requant": ("absmax", "operand", "wide", "slices", "rows"),
    "normalizer": ("divide",),
    "softmax": ("weights", "max", "scaled"),
    "dequant": ("clear", "exponent", "term", "output"),
    "quantizer": ("groups", "rows"),
    "kv_cache": ("reset", "advance"),
}


@dataclass(frozen=True)
class AccelParams:
    """The generated accelerator of ``arch`` (see the module docstring)."""

    arch: ArchSpec
    edge: int                       #: E, the array's side
    classes: tuple[str, ...]        #: per dataflow (in the architecture's order)
    sp_rows: int
    acc_rows: int
    sp_elems: int                   #: A/B elements per scratchpad row
    acc_elems: int                  #: C elements per accumulator row
    bus_bytes: int                  #: W, bytes per DRAM beat
    latency: int                    #: L, DRAM cycles from request to data
    dma_queue: int = DMA_QUEUE

    @property
    def a_bits(self) -> int:
        return self.arch.types[0].bits

    @property
    def c_bits(self) -> int:
        return self.arch.types[2].bits

    @property
    def resp_fifo_depth(self) -> int:
        """Read requests the DMA keeps in flight: enough for one per cycle over L cycles."""
        return 1 << (self.latency + 2).bit_length()

    def dataflow_class(self, index: int) -> str:
        return self.classes[index]

    def unit_beats(self, unit: str) -> int:
        """Cycles a workload unit takes per accumulator row: its elements over the unit's
        lanes (which divide them: :class:`hw.front.units.UnitsSpec`); 1 for ``kv_cache``."""
        spec = getattr(self.arch.units, unit)
        return self.acc_elems // spec.lanes if hasattr(spec, "lanes") else 1

    def unit_steps(self, unit: str, mode: str, rows: int, cols: int, count: int = 1) -> int:
        """Steps (cycles) of a unit command the RTL executes (:mod:`hw.rtl.accel_units`):
        ``rows`` x beats, the softmax's passes (two for ``weights``, one for ``max`` and
        ``scaled``) over ``ceil(cols / Ea)`` key blocks a row, the quantizer's two (absmax,
        codes) over each group's blocks (``ceil(cols / Ea)`` a row in all), ``requant
        rows``' two over its ``count`` tiles, one a token for ``kv_cache advance``, one for
        ``reset``."""
        if unit == "kv_cache":
            return 1 if mode == "reset" else rows
        passes = 2 if mode == "weights" or unit == "quantizer" else 1
        blocks = passes * -(-cols // self.acc_elems) if unit in ("softmax", "quantizer") else \
            2 * count if (unit, mode) == ("requant", "rows") else 1
        return rows * blocks * self.unit_beats(unit)


def _class_of(arch: ArchSpec, index: int) -> str:
    d = arch.dataflows[index]
    where = f"dataflow {d.name!r}"
    for row in d.space:
        if sorted(row) != [0] * (len(row) - 1) + [1]:
            raise SpecError(f"{where}: the accelerator maps one dim to each array axis, got a "
                            f"space row {row}")
    on_array = [row.index(1) for row in d.space]
    if len(set(on_array)) != len(on_array):
        raise SpecError(f"{where}: two array axes carry the same dim")
    temporal = [n for n in range(len(GEMM_DIMS)) if n not in on_array]
    if len(temporal) != 1:
        raise SpecError(f"{where}: the accelerator needs exactly one time-only dim, got "
                        f"{[GEMM_DIMS[n] for n in temporal]}")
    return GEMM_DIMS[temporal[0]]


def accel_params(arch: ArchSpec) -> AccelParams:
    """The accelerator of ``arch``; SpecError when the generator cannot build it."""
    a, b, c = arch.types
    rows, cols = arch.array
    if rows != cols:
        raise SpecError(f"the accelerator generator builds square arrays, got {rows}x{cols}")
    if a != b:
        raise SpecError(f"the accelerator keeps A and B in one scratchpad type, got {a} and {b}")
    for t in (a, c):
        if t.bits not in _WIDTHS:
            raise SpecError(f"the accelerator handles {_WIDTHS}-bit elements, got {t}")
    sp, acc, dram = arch.scratchpad, arch.accumulator, arch.dram
    if dram.bytes_per_cycle != sp.row_bytes:
        raise SpecError(f"the accelerator's DRAM beat is one scratchpad row: "
                        f"dram.bytes_per_cycle={dram.bytes_per_cycle} but scratchpad.row_bytes="
                        f"{sp.row_bytes}")
    if acc.row_bytes % dram.bytes_per_cycle:
        raise SpecError(f"an accumulator row ({acc.row_bytes} B) must be a whole number of "
                        f"{dram.bytes_per_cycle}-byte DRAM beats")
    if dram.latency_cycles < 1:
        raise SpecError(f"the accelerator needs a DRAM latency >= 1 cycle, got "
                        f"{dram.latency_cycles}")
    classes = tuple(_class_of(arch, n) for n in range(len(arch.dataflows)))
    return AccelParams(arch, rows, classes, sp.banks * sp.rows_per_bank,
                       acc.banks * acc.rows_per_bank, sp.row_bytes * 8 // a.bits,
                       acc.row_bytes * 8 // c.bits, dram.bytes_per_cycle, dram.latency_cycles)
