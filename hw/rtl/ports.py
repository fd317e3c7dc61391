"""The ports of every generated top: the host port and the run control, defined once.

:class:`~hw.rtl.generate.GeneratedArray` builds its signature from these, and every simulation
engine (the fast C++ harness, Amaranth's simulator, the cocotb bench) takes the port names
from here, so renaming a port is a change in this file only. The members are flat (no
sub-interfaces), so the Verilog ports carry these names as they are.

* Host port (:func:`host_signature`): ``host_addr = bank << word_bits | word``; ``host_we``
  writes ``host_wdata`` on a rising edge while idle; ``host_rdata`` is the word addressed in
  the previous cycle.
* Control (:func:`control_signature`): ``start`` (sampled while idle) runs the whole problem,
  ``busy`` is high while it runs, then ``done`` stays high until the next start; a fused
  design's ``mode`` (latched at ``start``) picks its dataflow.
* Clock: the top has no clock of its own; it runs in the ``sync`` domain of its parent. A top
  emitted alone (:func:`hw.rtl.emit.to_verilog`) gets a reset-less one: port :data:`CLOCK`.

Layer: hw.rtl, the Amaranth layer.
"""

from __future__ import annotations

from amaranth.hdl import Shape
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = [
    "BUSY", "CLOCK", "CONTROL_PORTS", "DONE", "HOST_ADDR", "HOST_PORTS", "HOST_RDATA",
    "HOST_WDATA", "HOST_WE", "MODE", "START", "array_signature", "control_signature",
    "host_signature", "port_widths",
]

HOST_ADDR = "host_addr"
HOST_WDATA = "host_wdata"
HOST_WE = "host_we"
HOST_RDATA = "host_rdata"
START = "start"
BUSY = "busy"
DONE = "done"
MODE = "mode"
#: The clock port of an emitted top: Amaranth names the ``sync`` domain's clock ``clk``.
CLOCK = "clk"


def host_signature(addr_bits: int, data_bits: int) -> wiring.Signature:
    """The host port, seen from the design: address, write data and enable in, read data out."""
    return wiring.Signature({
        HOST_ADDR: In(addr_bits), HOST_WDATA: In(data_bits), HOST_WE: In(1),
        HOST_RDATA: Out(data_bits),
    })


def control_signature(n_modes: int = 1) -> wiring.Signature:
    """Run control, seen from the design: ``start`` in, ``busy``/``done`` out; with
    ``n_modes > 1`` (a fused design) also ``mode`` in, ``0 .. n_modes - 1``."""
    if n_modes < 1:
        raise ValueError(f"n_modes must be at least 1, got {n_modes!r}")
    members = {START: In(1), BUSY: Out(1), DONE: Out(1)}
    if n_modes > 1:
        members[MODE] = In(range(n_modes))
    return wiring.Signature(members)


def array_signature(addr_bits: int, data_bits: int, n_modes: int = 1) -> wiring.Signature:
    """Host port and control as one flat signature (the ports of a generated top)."""
    return wiring.Signature({**host_signature(addr_bits, data_bits).members,
                             **control_signature(n_modes).members})


def port_widths(signature: wiring.Signature) -> dict[str, int]:
    """Member name -> width in bits of a flat ``signature`` (in its order)."""
    return {name: Shape.cast(member.shape).width
            for name, member in signature.members.items()}


#: Names of the host-port and control members (without ``mode``), in signature order.
HOST_PORTS: tuple[str, ...] = tuple(host_signature(1, 1).members)
CONTROL_PORTS: tuple[str, ...] = tuple(control_signature().members)
