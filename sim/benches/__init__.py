"""cocotb test modules; each reads ``$LEGO_BENCH_IN`` and writes ``$LEGO_BENCH_OUT`` (JSON)."""
