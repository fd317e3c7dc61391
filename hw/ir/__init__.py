"""Primitive-graph layer: lowering, simulation, passes, pipelining. No Amaranth."""
