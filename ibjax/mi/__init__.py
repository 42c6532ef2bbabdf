"""Mutual-information estimators: pure JAX functions, in bits, run inside the compiled training loop."""

from ibjax.mi.binning import (
    Binning,
    IdnnsBinning,
    bin_indices,
    binning_mi,
    idnns_bin_indices,
    layer_range,
    pack_symbols,
)
from ibjax.mi.entropy import label_entropy, symbol_entropies
from ibjax.mi.interface import LayerContext, MIEstimate, MIEstimator

__all__ = [
    "Binning",
    "IdnnsBinning",
    "LayerContext",
    "MIEstimate",
    "MIEstimator",
    "bin_indices",
    "binning_mi",
    "idnns_bin_indices",
    "label_entropy",
    "layer_range",
    "pack_symbols",
    "symbol_entropies",
]
