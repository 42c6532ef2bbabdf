"""Per-bucket checkpoints for resume: the stacked training state, and the results streamed to disk per chunk.

After every chunk its logged results (MI, metrics, gradients of that chunk only) are written to
`<dir>.results/chunk-CCCCCC.npz` (atomically), so host memory does not grow with epochs. A checkpoint holds,
after chunk c: the state of every model of the bucket (parameters, optimizer states, RNG keys; padded models
included, so a resume needs the same device count) and the index of the next chunk. Saved with Orbax
(`StandardSave` of host arrays, synchronously: it is on disk before the next chunk starts, so SIGKILL loses at
most the chunks since the last checkpoint; their result files are simply written again), every chunk or at
most every `every_minutes`; Orbax keeps the last two. Both folders go when the bucket's tables are written.
"""

from __future__ import annotations

import errno
import shutil
import time
from pathlib import Path

import jax
import numpy as np

from ibjax.rundir.store import atomic_write


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

    @property
    def results_dir(self) -> Path:
        return self.directory.with_name(self.directory.name + ".results")

    def write_chunk(self, chunk: int, arrays: dict) -> None:
        """One chunk's results (name -> host array), atomically."""
        def save(tmp: Path) -> None:
            with open(tmp, "wb") as f:  # a file object: np.savez adds no suffix
                np.savez(f, **arrays)

        atomic_write(self.results_dir / f"chunk-{chunk:06d}.npz", save)

    def read_chunks(self, n_chunks: int) -> dict:
        """name -> list of the arrays of chunks 0 .. n_chunks - 1."""
        parts: dict = {}
        for c in range(n_chunks):
            with np.load(self.results_dir / f"chunk-{c:06d}.npz") as z:
                for k in z.files:
                    parts.setdefault(k, []).append(z[k])
        return parts

    def save(self, next_chunk: int, state) -> float:
        """Save and return the seconds it took."""
        import orbax.checkpoint as ocp

        t = time.perf_counter()
        # The state's leaves in tree order under fixed keys: restoring does not depend on how Orbax stores
        # NamedTuples (optax states) or orders dict keys.
        leaves = [np.asarray(x) for x in jax.tree.leaves(jax.device_get(state))]
        tree = {"state": {f"{i:06d}": x for i, x in enumerate(leaves)},
                "next_chunk": np.asarray(next_chunk, np.int64)}
        try:
            self._mgr().save(next_chunk, args=ocp.args.StandardSave(tree), force=True)
            self._mgr().wait_until_finished()
        except OSError:
            raise
        except Exception as e:  # Orbax/TensorStore report a full disk as ValueError("RESOURCE_EXHAUSTED: ...")
            if any(m in str(e) for m in ("No space left", "RESOURCE_EXHAUSTED", "Disk quota exceeded")):
                raise OSError(errno.ENOSPC, "No space left on device", str(self.directory)) from e
            raise
        self._last = time.monotonic()
        return time.perf_counter() - t

    def restore(self, state_template):
        """(next_chunk, host state) of the latest checkpoint, or None if there is none."""
        if not self.directory.is_dir():
            return None
        import orbax.checkpoint as ocp

        step = self._mgr().latest_step()
        if step is None:
            return None
        restored = self._mgr().restore(step, args=ocp.args.StandardRestore())
        leaves = [restored["state"][k] for k in sorted(restored["state"])]
        state = jax.tree.unflatten(jax.tree.structure(state_template), leaves)
        return int(restored["next_chunk"]), state

    def remove(self) -> None:
        if self._manager is not None:
            self._manager.close()
            self._manager = None
        shutil.rmtree(self.directory, ignore_errors=True)
        shutil.rmtree(self.results_dir, ignore_errors=True)

