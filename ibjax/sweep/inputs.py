"""The inputs compressed by an autoencoder, for the k-NN estimators with `inputs: autoencoder` (Butakov et al.
2024): one autoencoder per such estimator (its latent is the estimator's `dim`), trained once before the networks
on the sweep's training rows, saved in the run directory (autoencoders/<estimator>.npz: weights and settings in
one file; <estimator>.json a readable copy) and loaded again on resume; the manifest records each one's weights
fingerprint, and a resume that would measure with another autoencoder than its finished buckets is refused. The
MI sample's rows, encoded, reach every program through `Data.encoded_inputs` as constants: the compiled programs
never train or run the autoencoder.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import jax.numpy as jnp
import numpy as np

from ibjax.data.task import Data, Task
from ibjax.rundir.store import atomic_write_bytes
from ibjax.spec import KNNEstimatorSpec, SweepSpec
from ibjax.sweep.programs import image_shape

if TYPE_CHECKING:
    from ibjax.mi.autoencoder import AutoencoderSettings

# ibjax.mi.autoencoder (Flax NNX, ~0.7 s to import) is imported by the functions below, when a spec has an
# autoencoder estimator: every other sweep starts without it.

FOLDER = "autoencoders"
ARCHITECTURE = 1  # ibjax.mi.autoencoder's layers: a saved autoencoder of another architecture is trained again


def autoencoded(spec: SweepSpec) -> list[KNNEstimatorSpec]:
    """The estimators that compress X by an autoencoder."""
    return [e for e in spec.mi.estimators if isinstance(e, KNNEstimatorSpec) and e.inputs == "autoencoder"]


def settings_for(e: KNNEstimatorSpec, task: Task) -> AutoencoderSettings:
    """A convolutional autoencoder for image rows (their (H, W, C), as the conv family reads them), a dense one
    for vectors."""
    from ibjax.mi.autoencoder import AutoencoderSettings

    shape = image_shape(task, "knn inputs autoencoder") if task.image_shape and not task.n_irrelevant else ()
    return AutoencoderSettings(dim=e.dim, image_shape=shape, epochs=e.autoencoder_epochs)


def _fingerprint(*arrays: np.ndarray) -> str:
    """A short SHA-256 of arrays' bytes (the training rows; an autoencoder's parameters)."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def weights_fingerprint(model) -> str:
    """A hash of the trained parameters: equal for the same autoencoder, recorded in the manifest."""
    from ibjax.mi.autoencoder import weights

    return _fingerprint(*weights(model))


def with_encoded_inputs(spec: SweepSpec, task: Task, data: Data, out: Path | None,
                        say: Callable[[str], None] = lambda _m: None) -> tuple[Data, dict[str, str]]:
    """`data` with the MI sample's inputs encoded by each autoencoder estimator's autoencoder (unchanged when the
    spec has none), and each autoencoder's weights fingerprint by estimator name (for the manifest: a resumed
    sweep must measure with the autoencoder its finished buckets used). `out` None (a dry run) encodes nothing:
    zeros of the right shape stand in, so that programs compile and time as the sweep's will."""
    wanted = autoencoded(spec)
    if not wanted:
        return data, {}
    if out is None:
        return data._replace(encoded_inputs={e.resolved_name: jnp.zeros((len(task.mi_rows), e.dim), jnp.float32)
                                             for e in wanted}), {}
    from ibjax.mi.autoencoder import encode

    x_mi = task.x_float(task.mi_idx)
    x_train = task.x_float(task.train_idx)
    encoded, prints = {}, {}
    for e in wanted:
        model = _trained(e, settings_for(e, task), x_train, out / FOLDER, say)
        encoded[e.resolved_name] = jnp.asarray(encode(model, x_mi))
        prints[e.resolved_name] = weights_fingerprint(model)
    return data._replace(encoded_inputs=encoded), prints


def _trained(e: KNNEstimatorSpec, settings: AutoencoderSettings, x_train: np.ndarray, folder: Path, say):
    """The estimator's autoencoder: loaded from the run directory where it was trained with these settings on
    these rows, else trained (and saved: weights and settings in one file, <name>.npz, written atomically; a copy
    of the settings and losses in <name>.json for reading)."""
    from ibjax.mi.autoencoder import train_autoencoder, weights, with_weights

    name = e.resolved_name
    record = {"estimator": name, "architecture": ARCHITECTURE, **asdict(settings),
              "image_shape": list(settings.image_shape), "n_inputs": int(x_train.shape[1]), "rows": int(len(x_train)),
              "data": _fingerprint(np.asarray(x_train, np.float32))}
    path = folder / f"{name}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                saved = json.loads(bytes(z["settings"]).decode())
                if {k: saved.get(k) for k in record} == record:
                    n = sum(1 for f in z.files if f.startswith("w"))
                    model = with_weights(x_train.shape[1], settings, [z[f"w{i}"] for i in range(n)])
                    say(f"[autoencoder] {name}: loaded from {path} (trained {saved.get('epochs')} epochs, final L1 "
                        f"loss {saved.get('final_loss', float('nan')):.4g})")
                    return model
            say(f"[autoencoder] {name}: the saved one was trained with other settings or rows: training again")
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:  # unreadable or truncated
            say(f"[autoencoder] {name}: cannot load {path} ({err}): training again")
    say(f"[autoencoder] {name}: training on {len(x_train):,} rows to a {settings.dim}-dimensional latent "
        f"({settings.epochs} epochs) ...")
    model, losses = train_autoencoder(x_train, settings,
                                      log=lambda ep, loss: say(f"[autoencoder] {name}: epoch {ep}, L1 {loss:.4g}")
                                      if ep % 50 == 0 else None)
    about = {**record, "final_loss": losses[-1], "first_loss": losses[0], "weights": weights_fingerprint(model)}
    buf = io.BytesIO()
    np.savez(buf, settings=np.frombuffer(json.dumps(about).encode(), np.uint8),
             **{f"w{i}": w for i, w in enumerate(weights(model))})
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_bytes(folder / f"{name}.json", json.dumps(about, indent=1).encode())
    return model
