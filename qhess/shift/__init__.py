"""Stage 2, shift rules: which shifted circuits a derivative needs, and how to combine them.

Recipes from a gate argument's frequencies or user shifts (`rules`), the `ShiftPlan` of
a Hessian (`plan`), the prefix-sharing schedule of its points (`schedule`) and the
measurements' light cone (`lightcone`: which gate arguments need circuits at all), all in
NumPy at trace time. Imports only `qhess.circuits`.
"""
