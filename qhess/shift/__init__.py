"""Stage 2, shift rules: which shifted circuits a derivative needs, and how to combine them.

Recipes from a gate argument's frequencies or user shifts (`rules`), the `ShiftPlan` of
a Hessian (`plan`) and the prefix-sharing schedule of its points (`schedule`), all in
NumPy at trace time. Imports only `qhess.circuits`.
"""
