"""Per run x layer x estimator compression verdicts from the logged I(X;T), I(T;Y) trajectories (bits).

A verdict separates the two things a global-peak rule mixes up on the 12-bit task (docs/reference.md,
section 4): the *early transient* (I(X;T) peaks at epochs ~15-40 while accuracy climbs, then falls back) and
the *late compression* Shwartz-Ziv & Tishby describe (a slow decrease long after the fit). The fitting phase ends at the
first logged epoch where I(T;Y) reaches `fit_fraction` of its final value; the transient is measured inside it,
the compression peak is searched from it on.

References:
    Shwartz-Ziv & Tishby (2017), Opening the black box of deep neural networks via information. arXiv:1703.00810.
    Saxe et al. (2018), On the information bottleneck theory of deep learning. ICLR.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd

from ibjax.rundir.contract import is_regression, layer_order
from ibjax.rundir.manifest import Manifest

# (ceiling_bits, reliable_bits) of one estimator, as the manifest records them (ibjax.mi.Limits is the same pair).
Limits = tuple[float, float]


@dataclass(frozen=True)
class VerdictSettings:
    """Every setting of the verdicts and intervals, with its default. All MI quantities are in bits."""

    # Drop from the post-fit peak to the final level that counts as compression. 0.5 bit is ~10x the median
    # residual noise of 30-bin I(X;T) about its smoothed curve on the 12-bit task (BUILD_NOTES.md, issue 4).
    threshold_bits: float = 0.5
    # Centred moving average over this many *logged* points (log-spaced epochs, so the window is a constant
    # factor in time late in training); light enough to keep the epoch-15-40 transient.
    smooth_window: int = 5
    # The final level is the mean of the last fraction of logged epochs (at least one point).
    final_fraction: float = 0.10
    # Fitting ends when smoothed I(T;Y) first reaches this fraction of its final level.
    fit_fraction: float = 0.95
    # Saturated: I(X;T) at the peak within this many bits of the estimator's ceiling (log2 N for counting and
    # mixture estimators: every sample its own symbol); also the margin of the validated-range flag.
    saturation_eps_bits: float = 0.05
    # Intervals: confidence level, bootstrap draws (runs resampled as wholes), and the bootstrap's seed.
    confidence: float = 0.95
    n_boot: int = 2000
    seed: int = 0
    # A network has fitted its training labels when its training accuracy (against the labels it trains on)
    # reaches this (epochs to fit, Zhang et al. 2017: later as label noise grows, then the same training error).
    fit_accuracy: float = 0.99
    # A network has generalized when its test accuracy reaches this (epochs to generalize, Shwartz-Ziv & Tishby's
    # depth claim; ibjax.report.phases). 0.9 on the 12-bit task: every depth of the depth study gets there.
    generalize_accuracy: float = 0.9
    # Thresholds for the sensitivity table (the chosen threshold is always added).
    sensitivity_bits: tuple[float, ...] = field(default=(0.1, 0.25, 0.5, 1.0, 2.0))

    def __post_init__(self):
        if self.threshold_bits < 0:
            raise ValueError(f"threshold_bits must be >= 0 (got {self.threshold_bits})")
        if self.smooth_window < 1 or self.smooth_window % 2 == 0:
            raise ValueError(f"smooth_window must be an odd number >= 1 (got {self.smooth_window})")
        for name in ("final_fraction", "fit_fraction", "confidence", "fit_accuracy", "generalize_accuracy"):
            v = getattr(self, name)
            if not 0 < v <= 1 or (name == "confidence" and v == 1):
                raise ValueError(f"{name} must be in (0, 1) (got {v})")
        if self.n_boot < 100:
            raise ValueError(f"n_boot must be >= 100 (got {self.n_boot})")

    def boot(self, max_draws: int | None = None) -> dict:
        """The bootstrap's keyword arguments (ibjax.report.intervals): draws, level, seed. `max_draws` caps the
        draws where a figure needs many intervals and quotes none (bands: one per epoch)."""
        n = self.n_boot if max_draws is None else min(self.n_boot, max_draws)
        return {"n_boot": n, "confidence": self.confidence, "seed": self.seed}

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DEFAULT_SETTINGS = VerdictSettings()

VERDICT_COLUMNS = (
    "run_id", "cell", "seed", "layer", "estimator", "n_epochs", "fit_epoch", "final_i_ty",
    "transient_peak_epoch", "transient_peak_bits", "transient_drop_bits",
    "peak_epoch", "peak_bits", "final_bits", "drop_bits", "drop_rel", "peak_at_end",
    "compressed", "compression_after_fit", "saturated", "unreliable", "noise_bits",
)


def smooth(values_T: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over `window` points, shrinking at the ends (no padding, no phase shift)."""
    return pd.Series(values_T, dtype=float).rolling(window, center=True, min_periods=1).mean().to_numpy()


def trajectory_verdict(epochs_T: np.ndarray, i_xt_T: np.ndarray, i_ty_T: np.ndarray, n_samples: int,
                       settings: VerdictSettings = DEFAULT_SETTINGS, limits: Limits | None = None) -> dict:
    """The verdict of one logged trajectory (one run, layer and estimator).

    Args:
        epochs_T: logged epochs, increasing.
        i_xt_T, i_ty_T: I(X;T) and I(T;Y) in bits at those epochs (non-finite points are dropped).
        n_samples: size N of the MI sample; log2(N) bits is the ceiling of I(X;T) = H(T).
        limits: the estimator's (ceiling, validated range) in bits (ibjax.mi.Limits); default log2 N for both.
    Returns:
        dict with the VERDICT_COLUMNS that describe the trajectory (epochs, bits, booleans); see README.
    """
    ceiling, reliable = (math.log2(n_samples),) * 2 if limits is None else limits
    ep, ixt, ity = (np.asarray(a, dtype=float) for a in (epochs_T, i_xt_T, i_ty_T))
    ok = np.isfinite(ixt) & np.isfinite(ity)
    ep, ixt, ity = ep[ok], ixt[ok], ity[ok]
    t = len(ep)
    if t < 2:
        raise ValueError(f"a verdict needs at least 2 finite logged epochs (got {t})")
    s_xt, s_ty = smooth(ixt, settings.smooth_window), smooth(ity, settings.smooth_window)
    n_final = max(1, math.ceil(settings.final_fraction * t))
    final_start = t - n_final

    final_ty = float(ity[final_start:].mean())
    reached = np.flatnonzero(s_ty >= settings.fit_fraction * final_ty)
    fit = int(reached[0]) if len(reached) else t - 1

    # Early transient: the largest rise-and-fall inside the fitting phase (reported, never called compression).
    tp = int(np.argmax(s_xt[: fit + 1]))
    transient_drop = float(s_xt[tp] - s_xt[tp: fit + 1].min())

    pk = fit + int(np.argmax(s_xt[fit:]))
    peak, final = float(s_xt[pk]), float(ixt[final_start:].mean())
    drop = peak - final
    peak_at_end = pk >= final_start  # still rising (or flat) into the final window: no decline to speak of
    # Raw value: a smoothed 12.0 can only come from raw 12.0s, but a raw 12.0 next to lower points should count.
    saturated = bool(ixt[pk] >= ceiling - settings.saturation_eps_bits)
    # Above the estimator's validated range anywhere from the fit on: the drop is measured where the
    # estimator's bias is not known to be small (kNN underestimates there, and not by a constant).
    unreliable = bool(ixt[fit:].max() > reliable + settings.saturation_eps_bits)
    # A trajectory the estimator cannot measure (at its ceiling at the peak, or outside its validated range) is
    # not a compression, whatever its drop: it is counted apart (saturated / unreliable), never as compressed.
    compressed = bool(drop > settings.threshold_bits and not peak_at_end and not saturated and not unreliable)
    resid = ixt[fit:] - s_xt[fit:]
    return {
        "n_epochs": t, "fit_epoch": int(ep[fit]), "final_i_ty": final_ty,
        "transient_peak_epoch": int(ep[tp]), "transient_peak_bits": float(s_xt[tp]),
        "transient_drop_bits": transient_drop,
        "peak_epoch": int(ep[pk]), "peak_bits": peak, "final_bits": final, "drop_bits": drop,
        "drop_rel": drop / peak if peak > 0 else float("nan"),
        "peak_at_end": bool(peak_at_end), "compressed": compressed,
        # A peak strictly after the fitting epoch means I(X;T) was still rising when fitting ended, so the decline
        # began afterwards (Shwartz-Ziv & Tishby's order); a peak at the fitting epoch itself means it was already
        # falling, i.e. compression concurrent with fitting (Saxe et al.).
        "compression_after_fit": bool(compressed and pk > fit),
        "saturated": saturated,
        "unreliable": unreliable,
        "noise_bits": float(resid.std()) if len(resid) > 1 else float("nan"),
    }


def limits_from_manifest(manifest: Manifest) -> dict[str, Limits]:
    """Each estimator's recorded limits (manifest 'estimators'); run directories older than them give none."""
    return manifest.limits()


def fit_progress(metrics: pd.DataFrame) -> pd.DataFrame:
    """A regression task's fitting curve per run and logged epoch: the share of its training loss's total fall
    made so far, (L(0) - L(t)) / (L(0) - L(end)) (0 at init, 1 at the end). It stands in for I(T;Y) in the verdicts
    of a regression task (I(T;Y) of continuous targets is only given by the Gaussian estimator), so that every
    estimator's verdict of a run shares one fitting epoch."""
    m = metrics.sort_values(["run_id", "epoch"])
    first = m.groupby("run_id").train_loss.transform("first")
    last = m.groupby("run_id").train_loss.transform("last")
    with np.errstate(divide="ignore", invalid="ignore"):
        progress = (first - m.train_loss) / (first - last)
    return m[["run_id", "epoch"]].assign(fit_progress=progress.to_numpy())


def run_verdicts(info: pd.DataFrame, runs: pd.DataFrame, n_samples: int,
                 settings: VerdictSettings = DEFAULT_SETTINGS, limits: dict[str, Limits] | None = None,
                 metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """verdicts.parquet: one row per non-diverged run x layer x estimator (diverged runs are counted in the
    summary instead: their MI after divergence is NaN and would make a fake drop). `limits`: per estimator
    name (limits_from_manifest); an estimator without them gets log2 N. `metrics` of a regression task (no
    accuracies): the fitting epoch comes from `fit_progress`, not I(T;Y)."""
    limits = limits or {}
    ok = runs.loc[~runs.diverged.astype(bool), ["run_id", "cell", "seed"]]
    df = info.merge(ok, on="run_id").sort_values(["run_id", "layer", "estimator", "epoch"])
    if metrics is not None and is_regression(metrics):
        df = df.merge(fit_progress(metrics), on=["run_id", "epoch"], how="left").assign(
            i_ty=lambda d: d.fit_progress)
    rows = []
    for (rid, layer, est), g in df.groupby(["run_id", "layer", "estimator"], sort=False):
        if np.isfinite(g.i_xt.to_numpy() + g.i_ty.to_numpy()).sum() < 2:
            continue
        v = trajectory_verdict(g.epoch.to_numpy(), g.i_xt.to_numpy(), g.i_ty.to_numpy(), n_samples, settings,
                               limits.get(est))
        rows.append({"run_id": rid, "cell": g.cell.iat[0], "seed": g.seed.iat[0], "layer": layer,
                     "estimator": est, **v})
    out = pd.DataFrame(rows, columns=list(VERDICT_COLUMNS))
    # Readable order: cells as the run table lists them, then seed, layer h1..out, estimator.
    cell_rank = {c: i for i, c in enumerate(dict.fromkeys(runs.cell))}
    layer_rank = {name: i for i, name in enumerate(layer_order(out.layer))}
    out = out.sort_values(["cell", "seed", "layer", "estimator"], key=lambda s: s.map(cell_rank) if s.name == "cell"
                          else s.map(layer_rank) if s.name == "layer" else s, kind="stable")
    for col in ("peak_at_end", "compressed", "compression_after_fit", "saturated", "unreliable"):
        out[col] = out[col].astype(bool)
    return out.reset_index(drop=True)
