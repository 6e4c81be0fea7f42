"""qhess: parameter-shift Hessians of parametrized quantum circuits, JAX-native.

Everything public is re-exported here; the ``_``-prefixed modules are private.
"""

from qhess._circuit import Circuit as Circuit
from qhess._circuit import circuit as circuit
from qhess._circuit import execute as execute
from qhess._hardware import hessian_experiments as hessian_experiments
from qhess._hardware import to_openqasm as to_openqasm
from qhess._hessian import hessian as hessian
from qhess._hessian import hessian_tapes as hessian_tapes
from qhess._hessian import value_grad_and_hessian as value_grad_and_hessian
from qhess._noise import AmplitudeDamping as AmplitudeDamping
from qhess._noise import BitFlip as BitFlip
from qhess._noise import Channel as Channel
from qhess._noise import DepolarizingChannel as DepolarizingChannel
from qhess._noise import GeneralizedAmplitudeDamping as GeneralizedAmplitudeDamping
from qhess._noise import PauliError as PauliError
from qhess._noise import PhaseDamping as PhaseDamping
from qhess._noise import PhaseFlip as PhaseFlip
from qhess._noise import QubitChannel as QubitChannel
from qhess._noise import with_noise as with_noise
from qhess._observables import Hermitian as Hermitian
from qhess._observables import I as I  # noqa: E741
from qhess._observables import Measurement as Measurement
from qhess._observables import Observable as Observable
from qhess._observables import X as X
from qhess._observables import Y as Y
from qhess._observables import Z as Z
from qhess._observables import expval as expval
from qhess._observables import probs as probs
from qhess._observables import var as var
from qhess._pennylane import from_pennylane as from_pennylane
from qhess._pennylane import to_pennylane as to_pennylane
from qhess._qiskit import from_openqasm as from_openqasm
from qhess._qiskit import from_qiskit as from_qiskit
from qhess._qiskit import to_qiskit as to_qiskit
from qhess._shift_rules import IllConditionedShiftsWarning as IllConditionedShiftsWarning
from qhess._shots import ShotBudget as ShotBudget
from qhess import optimize as optimize
from qhess._tape import GATES as _GATES
from qhess._tape import MultiRZ as MultiRZ
from qhess._tape import PauliRot as PauliRot
from qhess._tape import QubitUnitary as QubitUnitary
from qhess._tape import Tape as Tape

RX = _GATES["RX"]
RY = _GATES["RY"]
RZ = _GATES["RZ"]
PhaseShift = _GATES["PhaseShift"]
Rot = _GATES["Rot"]
U3 = _GATES["U3"]
CRX = _GATES["CRX"]
CRY = _GATES["CRY"]
CRZ = _GATES["CRZ"]
ControlledPhaseShift = _GATES["ControlledPhaseShift"]
IsingXX = _GATES["IsingXX"]
IsingYY = _GATES["IsingYY"]
IsingZZ = _GATES["IsingZZ"]
Hadamard = _GATES["Hadamard"]
PauliX = _GATES["PauliX"]
PauliY = _GATES["PauliY"]
PauliZ = _GATES["PauliZ"]
S = _GATES["S"]
T = _GATES["T"]
SX = _GATES["SX"]
CNOT = _GATES["CNOT"]
CZ = _GATES["CZ"]
CY = _GATES["CY"]
SWAP = _GATES["SWAP"]
Toffoli = _GATES["Toffoli"]
del _GATES

__all__ = [
    "AmplitudeDamping", "BitFlip", "Channel", "DepolarizingChannel",
    "GeneralizedAmplitudeDamping", "PauliError", "PhaseDamping", "PhaseFlip",
    "QubitChannel", "with_noise",
    "CNOT", "CRX", "CRY", "CRZ", "CY", "CZ", "Circuit", "ControlledPhaseShift",
    "Hadamard", "Hermitian", "I", "IllConditionedShiftsWarning", "IsingXX", "IsingYY",
    "IsingZZ", "Measurement",
    "MultiRZ", "Observable", "PauliRot", "PauliX", "PauliY", "PauliZ", "PhaseShift",
    "QubitUnitary", "RX", "RY", "RZ", "Rot", "S", "SWAP", "SX", "ShotBudget", "T", "Tape", "Toffoli",
    "U3", "X", "Y", "Z", "circuit", "execute", "expval", "from_openqasm", "from_pennylane",
    "from_qiskit", "hessian", "hessian_experiments", "hessian_tapes", "optimize", "probs", "to_openqasm",
    "to_pennylane", "to_qiskit", "value_grad_and_hessian", "var",
]
