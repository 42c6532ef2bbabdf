"""Mutual-information estimators: pure JAX functions, in bits, run inside the compiled training loop."""

from ibjax.mi.adaptive_bins import AdaptiveBinning, adaptive_bin_indices
from ibjax.mi.binning import (
    Binning,
    IdnnsBinning,
    bin_indices,
    binning_mi,
    idnns_bin_indices,
    layer_range,
    neuron_range,
    pack_symbols,
)
from ibjax.mi.entropy import label_entropy, symbol_entropies
from ibjax.mi.exact import ExactCounting, float_row_codes
from ibjax.mi.interface import LayerContext, Limits, MIEstimate, MIEstimator, estimator_limits
from ibjax.mi.knn import KNNEstimator, kl_entropy, kl_mi_with_labels, ksg_mi
from ibjax.mi.net_input import OnNetInput
from ibjax.mi.kde import KDEBound, NoisyMixture, kde_mi, noisy_layer_mi
from ibjax.mi.quantile_bins import QuantileBinning, quantile_bin_indices
from ibjax.mi.width_bins import FixedWidthBinning, width_bin_indices

__all__ = [
    "AdaptiveBinning",
    "adaptive_bin_indices",
    "Binning",
    "ExactCounting",
    "float_row_codes",
    "FixedWidthBinning",
    "KDEBound",
    "KNNEstimator",
    "kl_entropy",
    "kl_mi_with_labels",
    "ksg_mi",
    "NoisyMixture",
    "OnNetInput",
    "noisy_layer_mi",
    "QuantileBinning",
    "kde_mi",
    "quantile_bin_indices",
    "width_bin_indices",
    "IdnnsBinning",
    "LayerContext",
    "Limits",
    "estimator_limits",
    "MIEstimate",
    "MIEstimator",
    "bin_indices",
    "binning_mi",
    "idnns_bin_indices",
    "label_entropy",
    "layer_range",
    "neuron_range",
    "pack_symbols",
    "symbol_entropies",
]
