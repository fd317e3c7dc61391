"""The DRAM model every accelerator engine in Python uses (the cocotb bench, Amaranth's
simulator); :mod:`sim.accel_fast`'s C++ harness holds the same model, cycle for cycle (its
docstring has the exact semantics, and the tests hold the engines equal).

Layer: sim.
"""

from __future__ import annotations

from collections import deque

from .errors import SimulationError

__all__ = ["DramModel"]


class DramModel:
    """The DRAM of :mod:`sim.accel_fast` (its docstring has the exact semantics).

    Per counted cycle ``c`` a bench calls :meth:`response` (what ``mem_resp_*`` carry in
    ``c``) before the accelerator's outputs settle, then :meth:`request` once if
    ``mem_req_valid`` is high in ``c``. ``mem`` is the DRAM's image.
    """

    def __init__(self, image: bytes, bus_bytes: int, latency: int) -> None:
        if isinstance(bus_bytes, bool) or not isinstance(bus_bytes, int) or bus_bytes < 1:
            raise ValueError(f"bus_bytes must be a positive integer, got {bus_bytes!r}")
        if isinstance(latency, bool) or not isinstance(latency, int) or latency < 1:
            raise ValueError(f"latency must be a positive integer, got {latency!r}")
        self.mem = bytearray(image)
        self.bus_bytes = bus_bytes
        self.latency = latency
        self._pending: deque[tuple[int, int]] = deque()     # (due cycle, data), in order

    def response(self, cycle: int) -> int | None:
        """The read data answered in ``cycle`` (bytes packed little endian), or None."""
        if self._pending and self._pending[0][0] == cycle:
            return self._pending.popleft()[1]
        return None

    def request(self, cycle: int, write: bool, addr: int, length: int, wdata: int) -> None:
        """Serve the request of ``cycle``: store a write now (it lands at the end of the
        cycle, before any later request), queue a read's bytes for ``cycle + latency``.

        Raises :class:`SimulationError` naming cycle, address and length when the length is
        not in ``1 .. bus_bytes`` or the bytes are not all inside the DRAM.
        """
        if not 1 <= length <= self.bus_bytes or addr + length > len(self.mem):
            kind = "write" if write else "read"
            raise SimulationError(f"cycle {cycle}: {kind} request addr={addr:#x} "
                                  f"len={length} outside the DRAM model ({len(self.mem)} "
                                  f"bytes, lengths 1..{self.bus_bytes})")
        if write:
            self.mem[addr:addr + length] = (wdata & ((1 << 8 * length) - 1)).to_bytes(
                length, "little")
        else:
            data = int.from_bytes(self.mem[addr:addr + length], "little")
            self._pending.append((cycle + self.latency, data))
