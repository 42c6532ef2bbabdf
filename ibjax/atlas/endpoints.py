"""The declared primary endpoint of each claim, and the specifications the sensitivity analysis varies.

Written before any result is read, printed at the top of ATLAS.md, and the only thing that decides a verdict.
Everything else the atlas shows (other estimators, anchors, thresholds, smoothing, exclusion policies, the
equal-updates budget) is a specification of the sensitivity analysis, reported apart and never voted.

Per-network quantities (bits, from the registry's `measures`, last hidden layer):
    drop after fit   I(T;X) at the fitting time minus its final level: the compression that follows fitting.
    fall over training, relative   (I at the first logged epoch - final level) / the quantity's own ceiling.
Per-network times (from the registry's `phases`, ibjax.report.phases; claims (a)-(c) of Shwartz-Ziv & Tishby):
    epochs to generalize   first logged epoch with test accuracy >= 0.9.
    duration difference    mean over adjacent completing hidden layers of deeper - shallower duration (decades).
    lag                    log10 onset of the last hidden layer's compression - log10 SNR transition (decades).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ibjax.atlas.studies import CLAIMS, PHASE_CLAIMS


@dataclass(frozen=True)
class Endpoint:
    claim: str
    population: str      # which networks, in words
    design: str          # one-sample | paired | correlation | equivalence (direction 0: the claim predicts ~0)
    contrast: str        # the per-study effect, in words (sign: positive = what the claim predicts if +1)
    quantity: str        # the per-network quantity, in words
    direction: int       # +1: the claim predicts a positive effect; -1: a negative one; 0: none beyond the SESOI
    sesoi: float         # the smallest effect of interest (units of the effect's pooling scale)
    units: str


ENDPOINTS = (
    Endpoint("fit_then_compress", "tanh networks trained on true labels (Shwartz-Ziv & Tishby's setting)",
             "one-sample", "mean drop after fit", "drop after fit of I(X;T)", +1, 0.25, "bits"),
    Endpoint("compression_generalizes", "every cell with at least 8 measured networks",
             "correlation", "Spearman r of drop after fit vs generalization gap (train - test accuracy; "
             "test - train squared error for a regression task)",
             "drop after fit of I(X;T)", -1, 0.1, "Fisher z"),
    Endpoint("sgd_noise", "pairs of tanh networks that differ only in minibatch vs full batch (same seed, "
             "optimizer, learning rate and epochs)", "paired", "minibatch - full batch, mean drop after fit",
             "drop after fit of I(X;T)", +1, 0.25, "bits"),
    Endpoint("saturating_only", "pairs of networks that differ only in tanh vs relu (same seed and settings)",
             "paired", "tanh - relu, mean drop after fit", "drop after fit of I(X;T)", +1, 0.25, "bits"),
    Endpoint("irrelevant_compressed", "networks with task-irrelevant inputs (I(T;X_rel), I(T;X_irr) measured)",
             "one-sample", "mean of (relative fall of I(T;X_irr)) - (relative fall of I(T;X_rel))",
             "fall over training relative to the quantity's ceiling", +1, 0.05, "fraction of ceiling"),
    Endpoint("depth_speeds_generalization", "classification networks of 2+ depths that share every other setting",
             "correlation", "Spearman r of depth (hidden layers) vs epochs to 90 % test accuracy (never reached: "
             "slowest)", "epochs to generalize", -1, 0.1, "Fisher z"),
    Endpoint("deeper_compress_faster", "tanh networks trained on true labels with two adjacent hidden layers whose "
             "compression phases complete", "one-sample", "mean over networks of the duration difference deeper - "
             "shallower", "compression duration (decades from the onset to 90 % of the fall)", -1, 0.1, "decades"),
    Endpoint("snr_marks_onset", "minibatch tanh networks trained on true labels whose last hidden layer "
             "compresses and whose gradient SNR falls below 1", "equivalence", "mean lag, log10 onset - log10 SNR "
             "transition", "lag of the last hidden layer's compression onset (decades)", 0, 0.25, "decades"),
    Endpoint("random_labels_fit_later", "pairs of networks that differ only in completely random vs true labels "
             "(same seed and settings), both fitting their training labels (a pair where either never fits is "
             "left out and counted per arm)", "paired", "random - true labels, mean log10 epochs to fit",
             "epochs to 99 % training accuracy", +1, 0.1, "decades"),
)
ENDPOINT = {e.claim: e for e in ENDPOINTS}
assert tuple(ENDPOINT) == tuple(c.key for c in CLAIMS), "one endpoint per claim, in the claims' order"

# The estimator a primary endpoint uses, by dataset: 30-bin binning on the 12-bit task (Shwartz-Ziv & Tishby's
# estimator, validated there); on Saxe et al.'s linear teacher the exact Gaussian MI (their measure, exact for
# linear networks); on image data the first of these a study measured (exact MI of quantized networks is
# Lorenzen et al.'s measure and exact there; binning saturates on wide layers; KDE is Saxe et al.'s estimator,
# compressed kNN Butakov et al.'s).
PRIMARY_ESTIMATORS = {"tishby12": ("binning30",), "teacher": ("gaussian",),
                      "other": ("exact", "kde_upper", "knn5_pca2", "binning30")}


@dataclass(frozen=True)
class Spec:
    """One way of measuring the endpoints. `estimator` "primary" takes PRIMARY_ESTIMATORS; `threshold` None
    uses the continuous quantity, a number the binary "compressed" (quantity > threshold bits); `anchor` is the
    fitting time (registry.ANCHORS) or "start" (the first logged epoch); `exclusion`: exclude | include | worst |
    best (excluded networks given the arm's least / most favourable observed value); `budget`: epochs | updates
    (minibatch trajectories cut where they have taken as many steps as the full-batch twin)."""

    estimator: str = "primary"
    threshold: float | None = None
    anchor: str = "loss"
    smooth: int = 5
    exclusion: str = "exclude"
    budget: str = "epochs"

    def label(self) -> str:
        q = "continuous" if self.threshold is None else f"compressed > {self.threshold:g} bit"
        if self.anchor == "peak":  # a phase claim: its quantity is a time, the threshold says which layers count
            q = f"compressing: fall > {self.threshold:g} bit"
        return (f"{self.estimator} | {q} | anchor {self.anchor} | smooth {self.smooth} | {self.exclusion} | "
                f"{self.budget}")


PRIMARY = Spec()
# The phase claims: a layer compresses when its smoothed I(X;T) falls by more than the report's 0.5 bit from its
# maximum (the onset, anchor "peak"; not saturated, not in the final window), as in each study's REPORT.md.
PHASE_PRIMARY = Spec(threshold=0.5, anchor="peak")
# Claim 5's primary quantity is the fall over the whole training (Saxe et al. see the irrelevant information fall
# while the network fits): its anchor is the first logged epoch.
PRIMARY_BY_CLAIM = {e.claim: (replace(PRIMARY, anchor="start") if e.claim == "irrelevant_compressed"
                              else PHASE_PRIMARY if e.claim in PHASE_CLAIMS else PRIMARY)
                    for e in ENDPOINTS}

# The specification curve's grid (issue: estimator x threshold x fit anchor x smoothing x exclusion policy).
THRESHOLDS = (None, 0.1, 0.25, 0.5, 1.0)
SPEC_ANCHORS = ("loss", "ity", "snr", "start")
SPEC_SMOOTHING = (1, 5)
EXCLUSIONS = ("exclude", "include", "worst", "best")
BUDGETS = ("epochs", "updates")
