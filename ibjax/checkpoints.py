"""Per-bucket checkpoints for resume: the stacked training state and the results not yet written.

A checkpoint holds, after chunk c: the state of every model of the bucket (parameters, optimizer states, RNG
keys; padded models included, so a resume needs the same device count), the index of the next chunk, and the
per-chunk results collected so far (MI, metrics, gradients), which reach the tables only when the bucket
finishes. Saved with Orbax (`StandardSave` of host arrays, synchronously: a checkpoint is on disk before the
next chunk starts, so SIGKILL loses at most one chunk), every chunk or at most every `every_minutes`; Orbax
keeps the last two. The folder is removed when the bucket's tables are written.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import jax
import numpy as np


class BucketCheckpoints:
    def __init__(self, directory: Path, every_minutes: float | None = None):
        self.directory = Path(directory)
        self.every_s = None if not every_minutes else every_minutes * 60.0
        self._last = time.monotonic()
        self._manager = None

    def _mgr(self):
        if self._manager is None:
            import orbax.checkpoint as ocp

            opts = ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False)
            self._manager = ocp.CheckpointManager(self.directory.absolute(), options=opts)
        return self._manager

    def due(self) -> bool:
        return self.every_s is None or time.monotonic() - self._last >= self.every_s

    def save(self, next_chunk: int, state, parts: dict) -> float:
        """Save and return the seconds it took. `parts`: name -> list of host arrays (one per chunk)."""
        import orbax.checkpoint as ocp

        t = time.perf_counter()
        # The state's leaves in tree order under fixed keys: restoring does not depend on how Orbax stores
        # NamedTuples (optax states) or orders dict keys.
        leaves = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]
        tree = {"state": {f"{i:06d}": x for i, x in enumerate(leaves)},
                "parts": {k: _stack(vs) for k, vs in parts.items()},
                "next_chunk": np.asarray(next_chunk, np.int64)}
        self._mgr().save(next_chunk, args=ocp.args.StandardSave(tree), force=True)
        self._mgr().wait_until_finished()
        self._last = time.monotonic()
        return time.perf_counter() - t

    def restore(self, state_template):
        """(next_chunk, host state, parts) of the latest checkpoint, or None if there is none."""
        if not self.directory.is_dir():
            return None
        import orbax.checkpoint as ocp

        step = self._mgr().latest_step()
        if step is None:
            return None
        restored = self._mgr().restore(step, args=ocp.args.StandardRestore())
        leaves = [restored["state"][k] for k in sorted(restored["state"])]
        state = jax.tree.unflatten(jax.tree.structure(state_template), leaves)
        parts = {k: [v["rows"][: int(v["n"])]] for k, v in restored["parts"].items()}
        return int(restored["next_chunk"]), state, parts

    def remove(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        shutil.rmtree(self.directory, ignore_errors=True)


def _stack(chunks: list) -> dict:
    """One array per result (chunks concatenated along the epoch axis) and its length. Orbax refuses
    zero-size arrays, so an empty result is stored as one placeholder row with n = 0."""
    rows = np.concatenate(chunks)
    n = len(rows)
    if n == 0:
        rows = np.zeros((1, *rows.shape[1:]), rows.dtype)
    return {"rows": rows, "n": np.asarray(n, np.int64)}
