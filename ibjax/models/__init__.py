"""Model families. Today: stacked MLPs with padded widths (mlp.py), their activations (activations.py)."""

from ibjax.models.activations import ACTIVATIONS, BOUNDED_RANGES
from ibjax.models.mlp import ModelConsts, fake_quantize, forward, forward_layers, init_params, loss_grads, make_consts

__all__ = [
    "ACTIVATIONS",
    "BOUNDED_RANGES",
    "ModelConsts",
    "fake_quantize",
    "forward",
    "forward_layers",
    "init_params",
    "loss_grads",
    "make_consts",
]
