"""sim: Verilator (+ cocotb) builds and test benches that check generated RTL against golden."""
