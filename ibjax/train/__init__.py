"""Training: the compiled chunk (engine.py: training scan + inline estimators + gradient statistics), the host
loop over chunks (loop.py), and the per-epoch shuffle (shuffle.py)."""

from ibjax.train.copies import mlp_copies
from ibjax.train.engine import CompiledChunk, Engine, Program, TrainState, make_optimizer, model_mesh
from ibjax.train.loop import BucketResult, Interrupted, run_program
from ibjax.train.shuffle import feistel_permutation

__all__ = [
    "BucketResult",
    "CompiledChunk",
    "Engine",
    "Interrupted",
    "Program",
    "TrainState",
    "feistel_permutation",
    "make_optimizer",
    "mlp_copies",
    "model_mesh",
    "run_program",
]
