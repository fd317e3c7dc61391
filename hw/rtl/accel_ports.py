"""The ports of a generated accelerator (:mod:`hw.rtl.accel`), defined once.

Every engine that drives an accelerator (the fast C++ harness with its DRAM model, the cocotb
bench, Amaranth's simulator in the tests) takes the port names from here. Members are flat, so
the Verilog ports carry these names; the top also has ``clk`` and ``rst`` (the ``sync``
domain, reset high, synchronous).

* Command port (seen from the accelerator): ``cmd_data`` (one 128-bit instruction word,
  :func:`hw.front.isa.encode`) is taken in a cycle where ``cmd_valid`` and ``cmd_ready`` are
  both high. ``busy`` is high while any accepted instruction has not finished.
* Memory port (the DMA's, to DRAM): a request in every cycle where ``mem_req_valid`` is
  high, taken at once (the port has no backpressure: the memory serves one request per
  cycle, ``W`` bytes, the architecture's ``dram.bytes_per_cycle``): ``mem_req_write``, byte
  address ``mem_req_addr`` (any alignment), ``mem_req_len`` bytes (1 .. the bus width
  ``W``), write data in the low ``mem_req_len`` bytes of ``mem_req_wdata`` (byte 0 in bits
  0-7). A read request made in cycle ``c`` is answered in cycle ``c + L`` (the DRAM's
  latency, ``L >= 1``): ``mem_resp_valid`` high and the bytes in the low bytes of
  ``mem_resp_data``; responses come in request order. The accelerator registers the
  response (it acts on it in cycle ``c + L + 1``), so no logic depends combinationally on
  an input. A write takes effect at the end of its cycle, before any later request.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["BUSY", "CMD_DATA", "CMD_READY", "CMD_VALID", "MEM_REQ_ADDR", "MEM_REQ_LEN",
           "MEM_REQ_VALID", "MEM_REQ_WDATA", "MEM_REQ_WRITE", "MEM_RESP_DATA",
           "MEM_RESP_VALID", "WORD_BITS", "accel_signature"]

CMD_VALID = "cmd_valid"
CMD_READY = "cmd_ready"
CMD_DATA = "cmd_data"
BUSY = "busy"
MEM_REQ_VALID = "mem_req_valid"
MEM_REQ_WRITE = "mem_req_write"
MEM_REQ_ADDR = "mem_req_addr"
MEM_REQ_LEN = "mem_req_len"
MEM_REQ_WDATA = "mem_req_wdata"
MEM_RESP_VALID = "mem_resp_valid"
MEM_RESP_DATA = "mem_resp_data"

WORD_BITS = 128
ADDR_BITS = 32


def accel_signature(bus_bytes: int) -> wiring.Signature:
    """The accelerator's ports for a memory bus of ``bus_bytes`` bytes per beat."""
    if isinstance(bus_bytes, bool) or not isinstance(bus_bytes, int) or bus_bytes < 1:
        raise ValueError(f"bus_bytes must be a positive integer, got {bus_bytes!r}")
    return wiring.Signature({
        CMD_VALID: In(1), CMD_READY: Out(1), CMD_DATA: In(WORD_BITS), BUSY: Out(1),
        MEM_REQ_VALID: Out(1), MEM_REQ_WRITE: Out(1),
        MEM_REQ_ADDR: Out(ADDR_BITS), MEM_REQ_LEN: Out(range(bus_bytes + 1)),
        MEM_REQ_WDATA: Out(8 * bus_bytes),
        MEM_RESP_VALID: In(1), MEM_RESP_DATA: In(8 * bus_bytes),
    })
