"""golden: the single source of truth.

Float references of the algorithms and bit-exact models of the hardware arithmetic. Everything in
``hw``, ``sim`` and ``sw`` is checked against this package. It imports nothing else of ours.
"""
