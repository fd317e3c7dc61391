"""Checks of emitted designs: report, netlist cross-check, Yosys area."""
