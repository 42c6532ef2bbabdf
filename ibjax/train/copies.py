"""N copies of one MLP on one task, ready for `run_program`, without a sweep: what benchmarks and tests of the
engine itself need (a sweep builds its programs from the spec, ibjax.sweep.programs)."""

from __future__ import annotations

from ibjax.data.task import Task, load_task
from ibjax.mi.binning import Binning
from ibjax.models.mlp import MLP, ModelConsts, stack_consts
from ibjax.spec import DataSpec
from ibjax.train.engine import Engine
from ibjax.train.program import Program


def mlp_copies(n: int, hidden: tuple[int, ...] = (10, 7, 5, 4, 3), activation: str = "tanh", *,
               task: Task | None = None, estimators: tuple | None = None, chunk: int = 4, optimizer: str = "adam",
               batch_size: int = 256, **program: object) -> tuple[Engine, ModelConsts, Task]:
    """The engine of `n` identical networks (they differ by their seeds) and their stacked constants.

    task: default the 12-bit task with the default split; estimators: default 30-bin binning; `program`: the
    other `Program` fields, and the MLP's own (quantize_bits, noise_std, dropout).
    """
    task = task if task is not None else load_task(DataSpec())
    estimators = estimators if estimators is not None else (Binning(n_classes=task.n_classes),)
    mlp = MLP((task.x.shape[1], *hidden, task.n_classes), (activation,),
              **{k: program.pop(k) for k in ("quantize_bits", "noise_std", "dropout") if k in program})
    prog = Program(mlp, optimizer, task.train_idx.size, min(batch_size, task.train_idx.size), tuple(estimators),
                   chunk, **program)
    consts = stack_consts([(tuple(hidden), activation)] * n, (activation,), task.x.shape[1], tuple(hidden))
    return Engine(prog), consts, task
