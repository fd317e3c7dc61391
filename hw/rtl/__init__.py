"""Amaranth layer: FU, controller, generated array, graph emission, Verilog; the accelerator."""
