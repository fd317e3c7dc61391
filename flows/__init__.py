"""flows: the ``lego`` command line and end-to-end flows."""
