"""Stage 1, circuits: what a circuit is, without running it.

The gate and channel catalogue (matrices, generators' frequencies; the generator gates
and `Evolution` in ``generator_matrices`` and ``generator_gates``), observables and
measurements, tapes and the recording of a circuit function into one, drawings. Imports
nothing else of qhess.
"""
