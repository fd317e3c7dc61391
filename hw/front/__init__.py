"""Planning layer: specs, reuse, interconnect, plans, layout; architectures, programs, the
accelerator's cycle model. No Amaranth."""
