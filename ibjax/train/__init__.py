"""Training: what a program is (program.py: Program, TrainState, the optimizers), one network's math as pure
functions of its Program (epoch.py: initial state, loss, one epoch with gradient statistics; measure.py: every
estimator on every layer, metrics; rows.py: what a network reads of the data), the compiled chunk over networks
and devices with its ahead-of-time compile cache (engine.py), the host loop over chunks (loop.py), and the
per-epoch shuffle (shuffle.py)."""

from ibjax.train.copies import mlp_copies
from ibjax.train.engine import CompiledChunk, Engine, model_mesh
from ibjax.train.epoch import make_init, make_loss, make_train_epoch
from ibjax.train.loop import BucketResult, Interrupted, run_program
from ibjax.train.measure import make_measure
from ibjax.train.program import OPTIMIZERS, Networks, Program, TrainState, make_optimizer
from ibjax.train.shuffle import feistel_permutation

__all__ = [
    "BucketResult",
    "CompiledChunk",
    "Engine",
    "Interrupted",
    "Networks",
    "OPTIMIZERS",
    "Program",
    "TrainState",
    "feistel_permutation",
    "make_init",
    "make_loss",
    "make_measure",
    "make_optimizer",
    "make_train_epoch",
    "mlp_copies",
    "model_mesh",
    "run_program",
]
