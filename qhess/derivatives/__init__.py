"""Stage 4, derivatives: the entry points and everything between a call and the kernel.

`hessian` (entry points) → `cache` (compiled functions) → `pipeline` (record, plan,
evaluate, chain rule) using `options`, `dependence` (the jaxpr analysis), `evaluate` (the
cost model and kernel calls) or `adjoint`; sampled calls go through `estimators`,
`budget` and `variance`; `tapes` and `counting` expose the plan without simulating;
`flat` checks and flattens derivative pytrees for the optimisers.
"""
