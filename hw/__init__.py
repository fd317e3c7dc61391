"""hw: LEGO-style spatial accelerator generators in Amaranth 0.5, emitted as Verilog."""
