"""What a network reads of the task's data inside the compiled program: its rows of x (preprocessed, with its own
input variant), whether the native MLP kernel may take them, and how the data is split over the model mesh and
the vmap over networks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P

from ibjax.data.task import Data
from ibjax.threefry import row_normals

# The native kernel copies x whole (transposed) on every call: worth it only for small inputs like the 12-bit
# task's 4 096 x 12; image data goes through XLA's matmuls.
KERNEL_MAX_X = 2**18


def kernel_reads(data: Data, x) -> bool:
    """Whether the native MLP kernel may take `x` (rows of data.x as read_rows gives them): float32 rows shared by
    every network (no per-network input variants), small enough to copy on every call."""
    runs = data.runs
    return (data.x.dtype == jnp.float32 and not (runs is not None and runs.input_variants)
            and x.size <= KERNEL_MAX_X)


def read_rows(data: Data, rows):
    """Rows of x as the networks see them (float32): x[rows] (every row when rows is None), preprocessed
    inside the program when x is stored as uint8; inside a vmap over networks, with this network's random-input
    variant (data.runs: shuffled pixels, Gaussian images) applied."""
    x = data.x if rows is None else data.x[rows]
    if x.dtype != jnp.float32:
        x = x.astype(jnp.float32) * data.scale + data.shift
    runs = data.runs
    if runs is None or not runs.input_variants:
        return x
    x = x[:, runs.pixel_perm]
    rows = jnp.arange(data.x.shape[0]) if rows is None else rows
    # A fixed Gaussian image per stored row: its draw depends on the network's seed and the row only. float32, as
    # every other input (a float64 draw made the whole network train in float64).
    noise = row_normals(jax.random.PRNGKey(runs.gaussian_seed), rows, x.shape[1])
    return jnp.where(runs.gaussian, runs.gaussian_mean + runs.gaussian_std * noise, x)


def data_specs() -> Data:
    """How the chunk's data is split over the model mesh: shared arrays replicated, per-run variants by model."""
    return Data(*([P()] * (len(Data._fields) - 1)), runs=P("model"))


def data_axes() -> Data:
    """vmap axes of the data over the models: the per-run variants only."""
    return Data(*([None] * (len(Data._fields) - 1)), runs=0)
