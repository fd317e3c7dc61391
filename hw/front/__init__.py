"""Planning layer: specs, reuse, interconnect, plans, layout. No Amaranth."""
