"""Every figure ibjax draws, from the stored tables alone: the sweep's information planes (mean over seeds,
coloured by epoch) and the report's bands over seeds, fraction-compressed heatmaps, gradient SNR, accuracy.

Bands are percentile-bootstrap intervals of the mean over seeds, resampling whole runs (ibjax.intervals), so
they say how well the seed average is known, not how much single runs scatter. Epoch axes are symlog (linear
below 1) so epoch 0 is on the plot. MI is in bits.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.collections import EllipseCollection
from matplotlib.colors import LogNorm

from ibjax.report.intervals import bootstrap_band
from ibjax.report.labels import cell_slug
from ibjax.rundir.contract import is_regression, layer_order

LAYER_CMAP = "viridis"


def layer_colors(layers: list[str]) -> dict[str, tuple]:
    cmap = plt.get_cmap(LAYER_CMAP)
    return {name: cmap(i / max(1, len(layers) - 1) * 0.9) for i, name in enumerate(layers)}


def _matrix(df: pd.DataFrame, value: str, epochs: np.ndarray) -> np.ndarray:
    """[runs, epochs] of one column (NaN where a run has no value)."""
    return df.pivot_table(index="run_id", columns="epoch", values=value, aggfunc="first").reindex(
        columns=epochs).to_numpy(dtype=float)


def _mean_band(df: pd.DataFrame, value: str, boot: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    epochs = np.sort(df.epoch.unique())
    m = _matrix(df, value, epochs)
    with np.errstate(all="ignore"):
        mean = np.nanmean(m, axis=0) if len(m) else np.full(len(epochs), np.nan)
    lo, hi = bootstrap_band(m, **boot)
    return epochs, mean, lo, hi


def _epoch_axis(ax, max_epoch: float) -> None:
    ax.set_xscale("symlog", linthresh=1, linscale=0.4)
    ax.set_xlim(0, max_epoch * 1.05)
    ax.set_xlabel("epoch (symlog: 0 shown)")
    ax.grid(alpha=0.3, which="major")


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _end_labels(ax, ends: list[tuple[str, float, float]]) -> None:
    """Name each layer at its last point. Layers ending at the same place (saturated ones all end at (log2 N,
    H(Y))) share one label, "h1, h2"; labels of nearby end points are stacked, never printed over each other.
    Near means within 2 % (same place) or 8 % / 6 % (nearby) of the plotted x / y ranges."""
    if not ends:
        return
    xs, ys = np.array([e[1] for e in ends]), np.array([e[2] for e in ends])
    xr, yr = max(np.ptp(xs), 1e-9), max(np.ptp(ys), 1e-9)
    x_lo, x_hi = ax.get_xlim() if ax.get_xlim()[1] > ax.get_xlim()[0] else (xs.min(), xs.max())
    xr, yr = max(xr, x_hi - x_lo), max(yr, np.ptp(ax.get_ylim()))
    groups: list[list] = []
    for name, x, y in ends:
        for g in groups:
            if abs(g[1] - x) < 0.02 * xr and abs(g[2] - y) < 0.02 * yr:
                g[0].append(name)
                break
        else:
            groups.append([[name], x, y])
    placed: list[tuple[float, float]] = []
    for names, x, y in groups:
        stack = sum(abs(px - x) < 0.08 * xr and abs(py - y) < 0.06 * yr for px, py in placed)
        placed.append((x, y))
        right = x > x_lo + 0.75 * (x_hi - x_lo)
        ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=(-5 if right else 5, -11 - 11 * stack),
                    fontsize=8, ha="right" if right else "left")


def mi_vs_epoch(info: pd.DataFrame, layers: list[str], title: str, path: Path, boot: dict,
                fit_epochs: dict[str, float] | None = None) -> Path:
    """I(X;T) and I(T;Y) against epoch, one colour per layer: mean over seeds with a bootstrap band.
    `fit_epochs` (median per layer) is marked with a tick on the I(T;Y) panel."""
    colors = layer_colors(layers)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for ax, value, label in ((axes[0], "i_xt", "I(X;T) [bits]"), (axes[1], "i_ty", "I(T;Y) [bits]")):
        for layer in layers:
            d = info[info.layer == layer]
            if d.empty:
                continue
            ep, mean, lo, hi = _mean_band(d, value, boot)
            ax.plot(ep, mean, color=colors[layer], lw=1.5, label=layer)
            ax.fill_between(ep, lo, hi, color=colors[layer], alpha=0.25, lw=0)
            if value == "i_ty" and fit_epochs and np.isfinite(fit_epochs.get(layer, np.nan)):
                f = fit_epochs[layer]
                ax.plot([f], [np.interp(f, ep, mean)], marker="v", color=colors[layer], ms=7, mec="k", mew=0.5)
        _epoch_axis(ax, info.epoch.max())
        ax.set_ylabel(label)
    axes[0].legend(title="layer", fontsize=8, ncol=2)
    if fit_epochs:
        axes[1].plot([], [], "v", color="grey", mec="k", mew=0.5, label="fitting epoch (median)")
        axes[1].legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def infoplane_bands(info: pd.DataFrame, layers: list[str], title: str, path: Path, boot: dict) -> Path:
    """Information plane: per layer (one colour each) the mean trajectory over seeds from its first logged epoch
    (open circle) to its last (filled square); the shaded ellipse at each logged epoch spans the bootstrap
    interval of the mean in both coordinates. One colour map only (the layers): time runs along each line, from
    circle to square, and the sweep's own infoplane_<cell>.png colours the same points by epoch."""
    colors = layer_colors(layers)
    fig, ax = plt.subplots(figsize=(7, 5), dpi=120)
    ends = []
    for layer in layers:
        d = info[info.layer == layer]
        if d.empty:
            continue
        ep, mx, xlo, xhi = _mean_band(d, "i_xt", boot)
        _, my, ylo, yhi = _mean_band(d, "i_ty", boot)
        ok = np.isfinite(mx) & np.isfinite(my)
        if not ok.any():
            continue
        w, h = np.nan_to_num(xhi - xlo)[ok], np.nan_to_num(yhi - ylo)[ok]
        ax.add_collection(EllipseCollection(w, h, np.zeros(ok.sum()), units="xy", offsets=np.c_[mx[ok], my[ok]],
                                            offset_transform=ax.transData, facecolors=colors[layer],
                                            edgecolors="none", alpha=0.07))
        ax.plot(mx[ok], my[ok], "-", color=colors[layer], lw=1.8, label=layer)
        ax.plot(mx[ok][0], my[ok][0], "o", mfc="white", mec=colors[layer], mew=1.5, ms=6, zorder=3)
        ax.plot(mx[ok][-1], my[ok][-1], "s", color=colors[layer], ms=6, zorder=3)
        ends.append((layer, mx[ok][-1], my[ok][-1]))
    ax.autoscale_view()
    _end_labels(ax, ends)
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    handles = ax.get_legend_handles_labels()[0] + [
        plt.Line2D([], [], ls="", marker="o", mfc="white", mec="0.3", label=f"epoch {int(info.epoch.min())}"),
        plt.Line2D([], [], ls="", marker="s", color="0.3", label=f"epoch {int(info.epoch.max())}")]
    ax.legend(handles=handles, title="layer", fontsize=8, loc="lower right")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def compressed_heatmap(summary: pd.DataFrame, labels: dict[str, str], layers: list[str], title: str,
                       path: Path) -> Path:
    """Fraction of measured runs compressed, cells x layers, with k/n and the Wilson interval written in each square;
    squares where most runs are saturated at the estimator's ceiling (log2 N) or outside its validated range are
    hatched (the estimator cannot show compression there, or its drop is not to be trusted)."""
    cells = list(dict.fromkeys(summary.cell))
    s = summary.set_index(["cell", "layer"])
    frac = np.array([[s.at[(c, ly), "fraction_compressed"] if (c, ly) in s.index else np.nan for ly in layers]
                     for c in cells], dtype=float)
    fig, ax = plt.subplots(figsize=(1.5 * len(layers) + 3, 0.75 * len(cells) + 1.8), dpi=120)
    im = ax.imshow(np.ma.masked_invalid(frac), cmap="Blues", vmin=0, vmax=1, aspect="auto")
    for i, c in enumerate(cells):
        for j, ly in enumerate(layers):
            if (c, ly) not in s.index:
                continue
            r = s.loc[(c, ly)]
            if r.n_runs == 0:
                ax.text(j, i, "no runs", ha="center", va="center", fontsize=7)
                continue
            # The fraction is over the measured runs (not saturated, not outside the validated range): k of
            # those, and how many were not measured at all.
            m = int(r.get("n_measured", r.n_runs))
            unmeasured = int(r.n_runs) - m
            dark = np.isfinite(r.fraction_compressed) and r.fraction_compressed > 0.6
            if m == 0:
                text = f"not measured\n({unmeasured}/{int(r.n_runs)} saturated\nor out of range)"
            else:
                text = f"{r.n_compressed}/{m}\n[{r.fraction_lo:.2f}, {r.fraction_hi:.2f}]" + (
                    f"\n+{unmeasured} not measured" if unmeasured else "")
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
            if r.fraction_saturated > 0.5 or r.get("fraction_unreliable", 0) > 0.5:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                           edgecolor="0.55", lw=0))
    ax.set_xticks(range(len(layers)), layers)
    ax.set_yticks(range(len(cells)), [labels.get(c, c) for c in cells], fontsize=8)
    ax.set_xlabel("layer")
    ax.set_ylabel("cell")
    cb = fig.colorbar(im, ax=ax, fraction=0.04)
    cb.set_label("fraction of runs compressed")
    # Wrapped to the figure's width (about 12 characters an inch at this size): a narrow heatmap (few layers)
    # must not cut its own title off.
    width = int(12 * fig.get_figwidth())
    ax.set_title("\n".join(w for line in title.split("\n") for w in textwrap.wrap(line, width)), fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def _panels(n: int, width: float = 3.6, height: float = 2.9):
    ncols = min(4, n)
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows + 0.6), dpi=110,
                             squeeze=False, sharex=True, sharey=True)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()[:n], ncols


def _label_panels(axes, ncols: int, ylabel: str) -> None:
    """y label on the first column, x label on the lowest panel of each column only (shared axes)."""
    for i, ax in enumerate(axes):
        if i % ncols == 0:
            ax.set_ylabel(ylabel)
        if i + ncols < len(axes):
            ax.set_xlabel("")


def gradient_snr(gradients: pd.DataFrame, labels: dict[str, str], layers: list[str], path: Path,
                 boot: dict) -> Path:
    """Per cell, gradient signal-to-noise ratio ||mean|| / ||std|| of each layer's weight gradients over an
    epoch's minibatches, against epoch: geometric mean over seeds with a bootstrap band (log y). Full-batch
    runs (infinite SNR) have nothing to draw and say so."""
    colors = layer_colors(layers)
    cells = list(labels)
    fig, axes, ncols = _panels(len(cells))
    for ax, cell in zip(axes, cells):
        d = gradients[gradients.cell == cell]
        d = d.assign(log_snr=np.log10(d.snr.where(np.isfinite(d.snr) & (d.snr > 0))))
        if d.log_snr.notna().sum() == 0:
            ax.text(0.5, 0.5, "no finite SNR\n(full-batch: no gradient noise)", ha="center", va="center",
                    transform=ax.transAxes, fontsize=8)
        for layer in layers:
            g = d[d.layer == layer]
            if g.log_snr.notna().sum() == 0:
                continue
            ep, mean, lo, hi = _mean_band(g, "log_snr", boot)
            ax.plot(ep, 10 ** mean, color=colors[layer], lw=1.2, label=layer)
            ax.fill_between(ep, 10 ** lo, 10 ** hi, color=colors[layer], alpha=0.25, lw=0)
        ax.set_yscale("log")
        _epoch_axis(ax, gradients.epoch.max())
        ax.set_title(labels[cell], fontsize=9)
    _label_panels(axes, ncols, "gradient SNR  ||mean|| / ||std||")
    axes[0].legend(title="layer", fontsize=7, ncol=2)
    fig.suptitle("Gradient signal-to-noise ratio per layer (geometric mean over seeds, 95% band)", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def accuracy(metrics: pd.DataFrame, labels: dict[str, str], path: Path, boot: dict) -> Path:
    """Per cell, train and test accuracy against epoch: mean over seeds with a bootstrap band. A regression task:
    train and test mean squared error and the exact generalization error E_g (linear networks) instead."""
    cells = list(labels)
    regression = is_regression(metrics)
    curves = ((("train_loss", "C0", "train MSE"), ("test_loss", "C3", "test MSE"), ("gen_error", "k", "exact E_g"))
              if regression else (("train_acc", "C0", "train"), ("test_acc", "C3", "test")))
    fig, axes, ncols = _panels(len(cells))
    for ax, cell in zip(axes, cells):
        d = metrics[metrics.cell == cell]
        for value, color, name in curves:
            if d[value].notna().sum() == 0:
                continue
            ep, mean, lo, hi = _mean_band(d, value, boot)
            ax.plot(ep, mean, color=color, lw=1.3, label=name)
            ax.fill_between(ep, lo, hi, color=color, alpha=0.25, lw=0)
        _epoch_axis(ax, metrics.epoch.max())
        ax.set_title(labels[cell], fontsize=9)
    _label_panels(axes, ncols, "squared error" if regression else "accuracy (fraction correct)")
    axes[0].legend(fontsize=8, loc="upper right" if regression else "lower right")
    fig.suptitle("Train and test " + ("error" if regression else "accuracy") + " (mean over seeds, 95% band)",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def label_information(info: pd.DataFrame, labels: dict[str, str], layers: list[str], path: Path,
                      boot: dict) -> Path:
    """Label-noise sweeps: per cell, I(T;Y) against the true labels (solid) and against the labels the network
    was trained on (dashed) per layer, against epoch: mean over seeds with a bootstrap band. Where the labels are
    random the two part: what a memorizing network learns about its labels is not information about the task."""
    colors = layer_colors(layers)
    cells = [c for c in labels if (info.cell == c).any()]
    fig, axes, ncols = _panels(len(cells))
    for ax, cell in zip(axes, cells):
        d = info[info.cell == cell]
        for layer in layers:
            g = d[d.layer == layer]
            if g.empty:
                continue
            for value, style in (("i_ty", "-"), ("i_ty_trained", "--")):
                ep, mean, lo, hi = _mean_band(g, value, boot)
                ax.plot(ep, mean, style, color=colors[layer], lw=1.3, label=layer if value == "i_ty" else None)
                ax.fill_between(ep, lo, hi, color=colors[layer], alpha=0.18, lw=0)
        _epoch_axis(ax, info.epoch.max())
        ax.set_title(labels[cell], fontsize=9)
    _label_panels(axes, ncols, "I(T;Y) [bits]")
    handles = axes[0].get_legend_handles_labels()[0] + [
        plt.Line2D([], [], color="0.3", ls="-", label="true labels"),
        plt.Line2D([], [], color="0.3", ls="--", label="labels trained on")]
    axes[0].legend(handles=handles, fontsize=7, ncol=2, loc="best")
    est = ", ".join(sorted(info.estimator.unique()))
    fig.suptitle(f"I(T;Y) against the true and the trained-on labels ({est}; mean over seeds, 95% band)",
                 fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def infoplane(info: pd.DataFrame, runs: pd.DataFrame, cell: str, estimator: str, path: Path) -> Path:
    """Information plane of one cell: mean over seeds per (epoch, layer); each logged epoch is a line
    through the layers, coloured by epoch (as in Shwartz-Ziv & Tishby's figures)."""
    members = runs.loc[(runs.cell == cell) & ~runs.diverged, "run_id"]
    df = info[(info.estimator == estimator) & info.run_id.isin(members)]
    mean = df.groupby(["epoch", "layer"], sort=True)[["i_xt", "i_ty"]].mean().reset_index()
    layers = layer_order(df.layer)
    epochs = np.sort(mean.epoch.unique())
    norm = LogNorm(vmin=max(1, epochs[epochs > 0].min()) if (epochs > 0).any() else 1, vmax=max(epochs.max(), 2))
    cmap = plt.get_cmap("gnuplot")
    fig, ax = plt.subplots(figsize=(6.4, 4.8), dpi=120)
    for e in epochs:
        row = mean[mean.epoch == e].set_index("layer").reindex(layers)
        color = cmap(norm(max(e, 1)))
        ax.plot(row.i_xt, row.i_ty, "-", color=color, alpha=0.35, lw=0.8)
        ax.scatter(row.i_xt, row.i_ty, color=color, s=12, zorder=3)
    last = mean[mean.epoch == epochs[-1]].set_index("layer").reindex(layers)
    _end_labels(ax, [(name, r.i_xt, r.i_ty) for name, r in last.iterrows() if np.isfinite(r.i_xt + r.i_ty)])
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label="epoch")
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    ax.set_title(f"{cell}\n{estimator}, mean of {len(members)} seeds", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)


def infoplanes(run_dir: Path, info: pd.DataFrame, runs: pd.DataFrame, estimator: str) -> list[Path]:
    """figures/infoplane_<cell>.png for every cell with at least one non-diverged run."""
    out = []
    for cell in sorted(runs.cell.unique()):
        if (runs[runs.cell == cell].diverged).all():
            continue
        out.append(infoplane(info, runs, cell, estimator, run_dir / "figures" / f"infoplane_{cell_slug(cell)}.png"))
    return out
