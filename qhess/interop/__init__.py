"""Stage 5, interop: PennyLane, Qiskit, OpenQASM 3 and hardware experiments.

Optional dependencies are imported only inside the functions that need them, with an
ImportError that names the extra (`optional`).
"""
