"""Stage 3, simulation: running tapes on the statevector kernel.

One gate (`gates`), fused evolution (`evolve`), measurements (`measure`), the batched
kernel (`kernel`), density matrices for noise (`density`, `noisy`), measurement groups
and sampled counts (`groups`, `sampling`), memory checks, and `qhess.circuit` /
`qhess.execute` (`circuit`), which run recorded tapes. Knows nothing of derivatives.
"""
