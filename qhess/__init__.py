"""qhess: parameter-shift Hessians of parametrized quantum circuits, JAX-native.

Everything public is re-exported here, with ``__all__``. The stage subpackages
(``circuits``, ``shift``, ``simulate``, ``derivatives``, ``interop``) are internal: their
modules may change between releases; ``qhess.optimize`` is public.
"""

from importlib import metadata as _metadata

try:
  __version__ = _metadata.version("qhess")  # pyproject.toml's version, once installed
except _metadata.PackageNotFoundError:  # a source tree on sys.path, not installed
  __version__ = "0+unknown"

from qhess.simulate.circuit import Circuit as Circuit
from qhess.simulate.circuit import circuit as circuit
from qhess.simulate.circuit import execute as execute
from qhess.interop.experiments import hessian_experiments as hessian_experiments
from qhess.interop.experiments import gradient_experiments as gradient_experiments
from qhess.interop.persist import load_experiments as load_experiments
from qhess.interop.persist import save_experiments as save_experiments
from qhess.derivatives.hessian import gradient as gradient
from qhess.derivatives.cache import enable_compilation_cache as enable_compilation_cache
from qhess.derivatives.counting import evaluation_method as evaluation_method
from qhess.interop.openqasm import to_openqasm as to_openqasm
from qhess.derivatives.hessian import hessian as hessian
from qhess.derivatives.tapes import hessian_tapes as hessian_tapes
from qhess.derivatives.hessian import value_grad_and_hessian as value_grad_and_hessian
from qhess.circuits.channels import AmplitudeDamping as AmplitudeDamping
from qhess.circuits.channels import BitFlip as BitFlip
from qhess.circuits.channels import Channel as Channel
from qhess.circuits.channels import DepolarizingChannel as DepolarizingChannel
from qhess.circuits.channels import GeneralizedAmplitudeDamping as GeneralizedAmplitudeDamping
from qhess.circuits.channels import PauliError as PauliError
from qhess.circuits.channels import PhaseDamping as PhaseDamping
from qhess.circuits.channels import PhaseFlip as PhaseFlip
from qhess.circuits.channels import QubitChannel as QubitChannel
from qhess.simulate.noise import with_noise as with_noise
from qhess.circuits.observables import Hermitian as Hermitian
from qhess.circuits.observables import I as I  # noqa: E741
from qhess.circuits.observables import Measurement as Measurement
from qhess.circuits.observables import Observable as Observable
from qhess.circuits.observables import X as X
from qhess.circuits.observables import Y as Y
from qhess.circuits.observables import Z as Z
from qhess.circuits.observables import expval as expval
from qhess.circuits.observables import probs as probs
from qhess.circuits.observables import var as var
from qhess.interop.pennylane import from_pennylane as from_pennylane
from qhess.interop.pennylane_export import to_pennylane as to_pennylane
from qhess.interop.openqasm import from_openqasm as from_openqasm
from qhess.interop.qiskit import from_qiskit as from_qiskit
from qhess.interop.qiskit import to_qiskit as to_qiskit
from qhess.interop.primitives import to_sampler_pubs as to_sampler_pubs
from qhess.interop.mitigation import ZNE as ZNE
from qhess.interop.mitigation import readout_calibration as readout_calibration
from qhess.shift.rules import IllConditionedShiftsWarning as IllConditionedShiftsWarning
from qhess.simulate.sampling import ShotBudget as ShotBudget
from qhess import optimize as optimize
from qhess.circuits.tape import GATES as _GATES
from qhess.circuits.generator_gates import GATES as _GENERATOR_GATES
from qhess.circuits.generator_gates import Evolution as Evolution
from qhess.circuits.generator_gates import PCPhase as PCPhase
from qhess.circuits.tape import MultiRZ as MultiRZ
from qhess.circuits.tape import PauliRot as PauliRot
from qhess.circuits.tape import QubitUnitary as QubitUnitary
from qhess.circuits.tape import Tape as Tape

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
SingleExcitation = _GENERATOR_GATES["SingleExcitation"]
SingleExcitationPlus = _GENERATOR_GATES["SingleExcitationPlus"]
SingleExcitationMinus = _GENERATOR_GATES["SingleExcitationMinus"]
DoubleExcitation = _GENERATOR_GATES["DoubleExcitation"]
DoubleExcitationPlus = _GENERATOR_GATES["DoubleExcitationPlus"]
DoubleExcitationMinus = _GENERATOR_GATES["DoubleExcitationMinus"]
OrbitalRotation = _GENERATOR_GATES["OrbitalRotation"]
FermionicSWAP = _GENERATOR_GATES["FermionicSWAP"]
IsingXY = _GENERATOR_GATES["IsingXY"]
CPhaseShift00 = _GENERATOR_GATES["CPhaseShift00"]
CPhaseShift01 = _GENERATOR_GATES["CPhaseShift01"]
CPhaseShift10 = _GENERATOR_GATES["CPhaseShift10"]
U1 = _GENERATOR_GATES["U1"]
del _GATES, _GENERATOR_GATES

__all__ = [
    "AmplitudeDamping", "BitFlip", "Channel", "DepolarizingChannel",
    "GeneralizedAmplitudeDamping", "PauliError", "PhaseDamping", "PhaseFlip",
    "QubitChannel", "with_noise",
    "CNOT", "CRX", "CRY", "CRZ", "CY", "CZ", "Circuit", "ControlledPhaseShift",
    "Hadamard", "Hermitian", "I", "IllConditionedShiftsWarning", "IsingXX", "IsingYY",
    "IsingZZ", "Measurement",
    "MultiRZ", "Observable", "PauliRot", "PauliX", "PauliY", "PauliZ", "PhaseShift",
    "QubitUnitary", "RX", "RY", "RZ", "Rot", "S", "SWAP", "SX", "ShotBudget", "T", "Tape",
    "Toffoli",
    "U3", "X", "Y", "Z", "circuit",
    "CPhaseShift00", "CPhaseShift01", "CPhaseShift10", "DoubleExcitation",
    "DoubleExcitationMinus", "DoubleExcitationPlus", "Evolution", "FermionicSWAP",
    "IsingXY", "OrbitalRotation", "PCPhase", "SingleExcitation", "SingleExcitationMinus",
    "SingleExcitationPlus", "U1", "execute", "expval", "from_openqasm", "from_pennylane",
    "from_qiskit", "hessian", "hessian_experiments", "hessian_tapes", "optimize", "probs",
    "to_openqasm",
    "to_pennylane", "to_qiskit", "to_sampler_pubs", "value_grad_and_hessian", "var",
    "gradient", "gradient_experiments", "load_experiments", "save_experiments",
    "enable_compilation_cache", "evaluation_method",
    "ZNE", "readout_calibration",
]
