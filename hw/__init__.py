"""hw: LEGO-style spatial accelerator generators in Amaranth 0.5, emitted as Verilog.

Layers, each importing only the ones before it:

* :mod:`hw.front`: planning. Specs (:mod:`~hw.front.spec`), affine maps, reuse analysis,
  arborescence interconnect, array plans, fused planning, bank layout, host images; for
  accelerators, architectures, the instruction set, the kernel library and the cycle model
  (:mod:`~hw.front.accel_timing`). Plain Python: a mapper calls it thousands of times.
* :mod:`hw.cost`: the cycle, register and memory figures of a design, from its plans alone.
* :mod:`hw.ir`: the primitive graph of a datapath (lowering, simulation, passes, LP
  pipelining, the back end). Plain Python.
* :mod:`hw.rtl`: Amaranth. The FU, the tile controller, the generated array, emission of a
  primitive graph, Verilog output (:func:`hw.rtl.emit.emit_design`); the accelerator of an
  architecture (:mod:`hw.rtl.accel`).
* :mod:`hw.check`: what checks an emitted design: the JSON report and its cross-check against
  the parsed netlist, Yosys cell counts.
"""
