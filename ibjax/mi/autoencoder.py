"""An autoencoder that compresses the inputs X before a k-NN estimator (Butakov et al. 2024), in Flax and Optax.

k-NN estimators need a few dimensions, and X (an image) has hundreds. PCA is a linear projection: on a curved image
manifold (a blob moved over the image by a 2-D latent) two principal components cannot separate the images, and
the MI of the projection falls well below the MI of X (ibjax.validate's images16 tasks: a fifth of it). An
autoencoder learns a nonlinear map onto `dim` coordinates; where it is injective on the data, it keeps I(X;T).

As in Butakov et al.'s code: a small convolutional encoder for images (two stride-2 3x3 convolutions, 16 and 32
channels, LeakyReLU, then a dense layer to the latent), its mirror as the decoder, L1 reconstruction loss, Adam.
Vectors (no image shape) get a dense encoder (128, 64 units) and its mirror. Trained once, before the networks,
on the inputs it will encode (the sweep: the training rows; ibjax.sweep.inputs), never during training.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from ibjax.threefry import flat_counter_key


@dataclass(frozen=True)
class AutoencoderSettings:
    """Everything that decides the trained autoencoder besides its data (recorded beside the saved weights)."""

    dim: int                                # latent size: the coordinates the k-NN estimator sees
    image_shape: tuple[int, ...] = ()       # (H, W, C) of one input; () for vectors
    epochs: int = 200
    batch_size: int = 128
    learning_rate: float = 1e-3
    seed: int = 0


class Autoencoder(nnx.Module):
    def __init__(self, n_inputs: int, s: AutoencoderSettings, rngs: nnx.Rngs):
        self.image_shape = tuple(s.image_shape)
        if self.image_shape:
            h, w, c = self.image_shape
            self.grid = (math.ceil(math.ceil(h / 2) / 2), math.ceil(math.ceil(w / 2) / 2))
            flat = 32 * self.grid[0] * self.grid[1]
            self.conv1 = nnx.Conv(c, 16, (3, 3), strides=2, padding="SAME", rngs=rngs)
            self.conv2 = nnx.Conv(16, 32, (3, 3), strides=2, padding="SAME", rngs=rngs)
            self.to_latent = nnx.Linear(flat, s.dim, rngs=rngs)
            self.from_latent = nnx.Linear(s.dim, flat, rngs=rngs)
            self.deconv1 = nnx.ConvTranspose(32, 16, (3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
            self.deconv2 = nnx.ConvTranspose(16, c, (3, 3), strides=(2, 2), padding="SAME", rngs=rngs)
        else:
            self.enc1 = nnx.Linear(n_inputs, 128, rngs=rngs)
            self.enc2 = nnx.Linear(128, 64, rngs=rngs)
            self.to_latent = nnx.Linear(64, s.dim, rngs=rngs)
            self.from_latent = nnx.Linear(s.dim, 64, rngs=rngs)
            self.dec1 = nnx.Linear(64, 128, rngs=rngs)
            self.dec2 = nnx.Linear(128, n_inputs, rngs=rngs)

    def encode(self, x_NxD: jnp.ndarray) -> jnp.ndarray:
        """[N, dim] latent coordinates of flattened inputs."""
        act = nnx.leaky_relu
        if self.image_shape:
            h = x_NxD.reshape(x_NxD.shape[0], *self.image_shape)
            h = act(self.conv2(act(self.conv1(h))))
            return self.to_latent(h.reshape(h.shape[0], -1))
        return self.to_latent(act(self.enc2(act(self.enc1(x_NxD)))))

    def decode(self, z_NxK: jnp.ndarray) -> jnp.ndarray:
        """[N, D] flattened reconstructions."""
        act = nnx.leaky_relu
        if self.image_shape:
            hh, ww = self.grid
            h = act(self.from_latent(z_NxK)).reshape(z_NxK.shape[0], hh, ww, 32)
            h = self.deconv2(act(self.deconv1(h)))
            height, width, _ = self.image_shape
            return h[:, :height, :width, :].reshape(z_NxK.shape[0], -1)  # stride-2 transposes may overshoot
        return self.dec2(act(self.dec1(act(self.from_latent(z_NxK)))))

    def __call__(self, x_NxD: jnp.ndarray) -> jnp.ndarray:
        return self.decode(self.encode(x_NxD))


def new_autoencoder(n_inputs: int, settings: AutoencoderSettings) -> Autoencoder:
    """A freshly initialized autoencoder, its initial weights drawn in one compiled program (drawn op by op,
    each layer's truncated normal was a program of its own: ~2.6 s of the test suite's compiling). The key is
    the seed's own with its bits hashed over a flat counter (ibjax.threefry): the same weights, and the program
    compiles in 0.4 s instead of 3.7 s."""
    return _initialized(n_inputs, settings)


@functools.partial(nnx.jit, static_argnums=(0, 1))
def _initialized(n_inputs: int, settings: AutoencoderSettings) -> Autoencoder:
    return Autoencoder(n_inputs, settings, nnx.Rngs(flat_counter_key(jax.random.key(settings.seed))))


def train_autoencoder(x_NxD: np.ndarray, settings: AutoencoderSettings,
                      log: Callable[[int, float], None] | None = None) -> tuple[Autoencoder, list[float]]:
    """An autoencoder trained on the rows of x (float32 [N, D]) with L1 loss and Adam, minibatches reshuffled every
    epoch (seeded), and the mean training loss of each epoch. `log(epoch, loss)` is called every tenth epoch."""
    x = np.asarray(x_NxD, np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"an autoencoder needs at least 2 rows of flattened inputs, got shape {x.shape}")
    if settings.image_shape and math.prod(settings.image_shape) != x.shape[1]:
        raise ValueError(f"image shape {settings.image_shape} does not hold the {x.shape[1]} inputs of a row")
    model = new_autoencoder(x.shape[1], settings)
    graphdef, params = nnx.split(model, nnx.Param)
    tx = optax.adam(settings.learning_rate)
    opt_state = tx.init(params)

    def loss_fn(p, xb):
        return jnp.mean(jnp.abs(nnx.merge(graphdef, p)(xb) - xb))

    @jax.jit
    def step(p, o, xb):
        loss, grads = jax.value_and_grad(loss_fn)(p, xb)
        updates, o = tx.update(grads, o, p)
        return optax.apply_updates(p, updates), o, loss

    batch = min(settings.batch_size, len(x))
    n_batches = len(x) // batch  # every step the same shape: one compiled step (the remainder waits a turn)
    rng = np.random.default_rng(settings.seed)
    losses = []
    for epoch in range(settings.epochs):
        order = rng.permutation(len(x))
        epoch_losses = []
        for b in range(n_batches):
            params, opt_state, loss = step(params, opt_state, jnp.asarray(x[order[b * batch:(b + 1) * batch]]))
            epoch_losses.append(loss)  # read once per epoch: a read every step waits for that step to finish
        total = 0.0
        for loss in jax.device_get(epoch_losses):
            total += float(loss)
        losses.append(total / n_batches)
        if log is not None and (epoch + 1) % 10 == 0:
            log(epoch + 1, losses[-1])
    return nnx.merge(graphdef, params), losses


def encode(model: Autoencoder, x_NxD: np.ndarray, block: int = 1024) -> np.ndarray:
    """float32 [N, dim] latent coordinates, in blocks of rows (memory)."""
    graphdef, params = nnx.split(model, nnx.Param)
    enc = jax.jit(lambda p, xb: nnx.merge(graphdef, p).encode(xb))
    x = np.asarray(x_NxD, np.float32)
    return np.concatenate([np.asarray(enc(params, jnp.asarray(x[i:i + block])))
                           for i in range(0, len(x), block)]).astype(np.float32)


def weights(model: Autoencoder) -> list[np.ndarray]:
    """The trained parameters as a flat list (in the order `with_weights` reads them back)."""
    return [np.asarray(a) for a in jax.tree.leaves(nnx.split(model, nnx.Param)[1])]


def with_weights(n_inputs: int, settings: AutoencoderSettings, leaves: list[np.ndarray]) -> Autoencoder:
    """The autoencoder of these settings with saved parameters (ValueError when they do not fit its shapes)."""
    graphdef, params = nnx.split(new_autoencoder(n_inputs, settings), nnx.Param)
    fresh = jax.tree.leaves(params)
    if len(fresh) != len(leaves) or any(a.shape != np.shape(b) for a, b in zip(fresh, leaves)):
        raise ValueError("the saved autoencoder's parameters do not match its settings")
    params = jax.tree.unflatten(jax.tree.structure(params), [jnp.asarray(v) for v in leaves])
    return nnx.merge(graphdef, params)
