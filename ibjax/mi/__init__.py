"""Mutual-information estimators: pure JAX functions, in bits, run inside the compiled training loop."""

from ibjax.mi.binning import Binning, bin_indices, binning_mi, layer_range, pack_symbols
from ibjax.mi.entropy import label_entropy, symbol_entropies
from ibjax.mi.interface import LayerContext, MIEstimate, MIEstimator

__all__ = [
    "Binning",
    "LayerContext",
    "MIEstimate",
    "MIEstimator",
    "bin_indices",
    "binning_mi",
    "label_entropy",
    "layer_range",
    "pack_symbols",
    "symbol_entropies",
]
