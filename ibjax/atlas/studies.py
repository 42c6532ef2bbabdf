"""The experiment library the atlas expects: one sweep per study (sweeps/<file>), the paper it reproduces and the
claims it bears on. A run directory is matched to its study by the spec's `name`; a study with no run directory
is named as missing in ATLAS.md, never silently skipped. Run directories of other sweeps still contribute
whatever evidence their cells allow (the evidence rules look at settings, not at names)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    key: str
    title: str
    source: str
    # What the claim predicts, in the terms the evidence rules test (ATLAS.md prints it beside the verdict).
    prediction: str


CLAIMS = (
    Claim("fit_then_compress", "Training has a fitting phase, then a compression phase",
          "Shwartz-Ziv & Tishby 2017",
          "most runs' I(X;T) falls by more than the threshold after I(T;Y) has fitted (Wilson lower bound > 0.5)"),
    Claim("compression_generalizes", "Compression drives generalization",
          "Shwartz-Ziv & Tishby 2017 (disputed by Saxe et al. 2018)",
          "more compression goes with a smaller generalization gap (Spearman r < 0 within cells), and networks "
          "trained on random labels, which cannot generalize, compress less than those trained on true labels"),
    Claim("sgd_noise", "Compression comes from the noise of SGD",
          "Shwartz-Ziv & Tishby 2017 (disputed by Saxe et al. 2018)",
          "minibatch SGD compresses more often than full-batch GD on the same networks and seeds, and full-batch "
          "GD does not compress"),
    Claim("saturating_only", "Compression comes from double-saturating nonlinearities only",
          "Saxe et al. 2018",
          "tanh / softsign / sigmoid networks compress more often than relu / softplus / linear / elu / swish ones "
          "on the same seeds, and most non-saturating runs do not compress"),
    Claim("irrelevant_compressed", "Information about task-irrelevant inputs is what gets compressed",
          "Saxe et al. 2018",
          "I(T;X_irr) falls by more than the threshold more often than I(T;X_rel) in the same runs and layers"),
    # Shwartz-Ziv & Tishby's depth claims (a)-(c), on the phase times of ibjax.report.phases.
    Claim("depth_speeds_generalization", "Deeper networks generalize in fewer epochs", "Shwartz-Ziv & Tishby 2017",
          "networks with more hidden layers reach 90 % test accuracy in fewer epochs (Spearman r < 0 among "
          "networks that differ only in depth)"),
    Claim("deeper_compress_faster", "Deeper layers compress faster", "Shwartz-Ziv & Tishby 2017",
          "of two adjacent hidden layers whose compression phases both complete, the deeper one's lasts fewer "
          "decades of epochs (mean difference deeper - shallower < 0)"),
    Claim("snr_marks_onset", "Compression starts at the gradients' drift-to-diffusion transition",
          "Shwartz-Ziv & Tishby 2017",
          "the last hidden layer's compression onset lies within +-0.25 decades of the epoch where the gradient "
          "SNR falls below 1 (the mean lag equivalent to 0 by TOST)"),
    Claim("random_labels_fit_later", "Random labels are fitted, only later", "Zhang et al. 2017",
          "networks trained on completely random labels reach 99 % training accuracy, in more epochs than the same "
          "networks on true labels (paired, log10 epochs: mean > 0)"),
)
# The claims read from the phase table (registry.PHASE_COLUMNS), not from the drop of I(X;T) after the fit.
PHASE_CLAIMS = ("depth_speeds_generalization", "deeper_compress_faster", "snr_marks_onset")


# The claims a regression study (dataset teacher) bears on: compression vs generalization is stated for any task
# (Saxe et al.'s linear networks test it where MI is exact); the others are about classification networks.
REGRESSION_CLAIMS = ("compression_generalizes",)
# The datasets with continuous targets, as the spec names them (ibjax.spec.REGRESSION_DATASETS: the atlas reads run
# directories, not specs; tests/test_layout.py checks the two agree).
REGRESSION_DATASETS = ("teacher",)


@dataclass(frozen=True)
class Study:
    name: str          # the sweep's `name:` (and its run directory's spec.yaml)
    sweep: str         # the file under sweeps/
    paper: str
    claims: tuple[str, ...]
    what: str


STUDIES = (
    Study("training_size", "training_size.yaml", "Shwartz-Ziv & Tishby 2017",
          ("fit_then_compress", "compression_generalizes"),
          "12-10-7-5-4-3-2 tanh on the 12-bit task, training fractions 5 / 45 / 85 %, gradient SNR"),
    Study("saxe_activations", "saxe_activations.yaml", "Saxe et al. 2018",
          ("fit_then_compress", "saturating_only", "compression_generalizes"),
          "tanh, softsign, relu, softplus, linear on the 12-bit task, many seeds"),
    Study("sgd_vs_gd", "sgd_vs_gd.yaml", "Saxe et al. 2018", ("sgd_noise", "fit_then_compress"),
          "minibatch SGD vs full-batch GD, tanh and relu"),
    Study("irrelevant_inputs", "irrelevant_inputs.yaml", "Saxe et al. 2018", ("irrelevant_compressed",),
          "task-relevant and task-irrelevant input dimensions, I(T;X_rel) vs I(T;X_irr)"),
    Study("saxe_mnist", "saxe_mnist.yaml", "Saxe et al. 2018", ("saturating_only", "fit_then_compress"),
          "784-1024-20-20-20-10 tanh vs relu on Fashion-MNIST, KDE (sigma^2 = 0.1) and binning"),
    Study("quantized", "quantized.yaml", "Lorenzen et al. 2022", ("fit_then_compress", "saturating_only"),
          "8-bit and 4-bit quantized networks, exact MI, tanh and relu, quantized vs not"),
    Study("adaptive_binning", "adaptive_binning.yaml", "Chelombiev et al. 2019",
          ("saturating_only", "fit_then_compress", "compression_generalizes"),
          "adaptive binning, relu / elu / swish / softplus, with and without L2"),
    Study("estimator_sensitivity", "estimator_sensitivity.yaml", "Lorenzen et al. 2022; Saxe et al. 2018",
          ("fit_then_compress", "saturating_only"),
          "the same networks under every binning variant and bin count, KDE and kNN"),
    Study("memorization", "memorization.yaml", "Zhang et al. 2017",
          ("compression_generalizes", "random_labels_fit_later"),
          "random labels 0 / 50 / 100 % on Fashion-MNIST"),
    Study("saxe_linear", "saxe_linear.yaml", "Saxe et al. 2018", ("compression_generalizes",),
          "deep linear students of a linear teacher (exact Gaussian MI), P = 100 (overtraining) vs 400, full batch "
          "vs minibatch 5, tanh for contrast"),
    Study("stochastic_fashion_mnist", "stochastic_fashion_mnist.yaml", "Butakov et al. 2024",
          ("fit_then_compress", "saturating_only"),
          "stochastic conv net on Fashion-MNIST, compressed-kNN MI beside binning"),
    Study("depth", "depth.yaml", "Shwartz-Ziv & Tishby 2017",
          ("depth_speeds_generalization", "deeper_compress_faster", "snr_marks_onset", "fit_then_compress",
           "compression_generalizes"),
          "1 to 6 hidden layers of tanh on the 12-bit task, 24 seeds, 10 000 epochs, gradient SNR"),
    Study("quantized_conv", "quantized_conv.yaml", "Lorenzen et al. 2022", ("fit_then_compress", "saturating_only"),
          "quantized conv nets (8 and 4 bits) on Fashion-MNIST, exact MI beside binning, tanh vs relu"),
)
STUDY_NAMES = tuple(s.name for s in STUDIES)

# Double-saturating nonlinearities (bounded on both sides) and the rest, for the saturating_only claim.
SATURATING = frozenset({"tanh", "softsign", "sigmoid"})
NON_SATURATING = frozenset({"relu", "softplus", "linear", "leaky_relu", "elu", "swish", "gelu"})
