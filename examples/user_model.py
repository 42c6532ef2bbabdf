"""An example of a user-defined model for ibjax: any flax.nnx.Module whose __call__ returns logits.

ibjax constructs it as `TinyCNN(**model.kwargs, rngs=nnx.Rngs(seed))`, stacks one copy per network of the sweep
(vmapped: one compiled program), and measures every layer recorded with `self.sow(nnx.Intermediate, name, h)`,
in the order they are computed, plus the softmax output `out`. The sweep that uses it: examples/user_model.yaml.
"""

from __future__ import annotations

import jax
from flax import nnx


class TinyCNN(nnx.Module):
    """conv (3x3, `channels`) -> ReLU -> 2x2 max-pool -> dense (`width`) -> tanh -> dropout -> logits."""

    def __init__(self, channels: int = 8, width: int = 16, n_classes: int = 10, image_size: int = 8,
                 dropout: float = 0.0, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, channels, (3, 3), padding="SAME", rngs=rngs)
        side = image_size // 2
        self.hidden = nnx.Linear(side * side * channels, width, rngs=rngs)
        self.drop = nnx.Dropout(dropout)  # no rngs here: ibjax passes a fresh key per minibatch in training
        self.head = nnx.Linear(width, n_classes, rngs=rngs)

    def __call__(self, x, *, rngs: nnx.Rngs | None = None):  # x: [batch, H, W, 1]
        h = nnx.max_pool(jax.nn.relu(self.conv(x)), (2, 2), strides=(2, 2))
        self.sow(nnx.Intermediate, "features", h)  # measured as layer "features" (flattened per sample)
        h = jax.numpy.tanh(self.hidden(h.reshape(h.shape[0], -1)))
        self.sow(nnx.Intermediate, "hidden", h)
        return self.head(self.drop(h, rngs=rngs))
