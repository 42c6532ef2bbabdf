"""Mutual-information estimators: pure JAX functions, in bits, run inside the compiled training loop.

The public names: the estimators a sweep builds (each an `MIEstimator`: hashable settings, a name, a call on one
layer's activations), the interface they share, and the functional forms a notebook calls directly. Bin
indices, ranges, symbol packing and the other building blocks stay in their modules (ibjax.mi.binning, ...).
"""

from ibjax.mi.adaptive_bins import AdaptiveBinning
from ibjax.mi.binning import Binning, IdnnsBinning, binning_mi
from ibjax.mi.entropy import symbol_entropies
from ibjax.mi.exact import ExactCounting
from ibjax.mi.gaussian import GaussianMI, gaussian_mi_bits, linear_layer_mi
from ibjax.mi.interface import LayerContext, Limits, MIEstimate, MIEstimator, estimator_limits
from ibjax.mi.kde import KDEBound, NoisyMixture, kde_mi, noisy_layer_mi
from ibjax.mi.knn import KNNEstimator, kl_entropy, kl_mi_with_labels, ksg_mi
from ibjax.mi.net_input import OnNetInput
from ibjax.mi.quantile_bins import QuantileBinning
from ibjax.mi.width_bins import FixedWidthBinning

__all__ = [
    # estimators
    "AdaptiveBinning",
    "Binning",
    "ExactCounting",
    "FixedWidthBinning",
    "GaussianMI",
    "IdnnsBinning",
    "KDEBound",
    "KNNEstimator",
    "NoisyMixture",
    "OnNetInput",
    "QuantileBinning",
    # their interface
    "LayerContext",
    "Limits",
    "MIEstimate",
    "MIEstimator",
    "estimator_limits",
    # functional forms
    "binning_mi",
    "gaussian_mi_bits",
    "kde_mi",
    "kl_entropy",
    "kl_mi_with_labels",
    "ksg_mi",
    "linear_layer_mi",
    "noisy_layer_mi",
    "symbol_entropies",
]
