"""Figures from the stored tables alone."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402


def cell_slug(cell: str) -> str:
    """A file-name-safe short form of a cell string."""
    short = cell.replace("activation=", "").replace("hidden=", "w").replace("optimizer=", "")
    short = short.replace("lr=", "lr").replace("batch=", "bs").replace("momentum=", "m")
    return re.sub(r"[^A-Za-z0-9.\-]+", "_", short).strip("_")


def infoplane(info: pd.DataFrame, runs: pd.DataFrame, cell: str, estimator: str, path: Path) -> Path:
    """Information plane of one cell: mean over seeds per (epoch, layer); each logged epoch is a line
    through the layers, coloured by epoch (as in Shwartz-Ziv & Tishby's figures)."""
    members = runs.loc[(runs.cell == cell) & ~runs.diverged, "run_id"]
    df = info[(info.estimator == estimator) & info.run_id.isin(members)]
    mean = df.groupby(["epoch", "layer"], sort=True)[["i_xt", "i_ty"]].mean().reset_index()
    layers = list(dict.fromkeys(df.layer))  # stored order: h1.., out
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
    for name, r in last.iterrows():
        ax.annotate(name, (r.i_xt, r.i_ty), textcoords="offset points", xytext=(4, -10), fontsize=8)
    sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, label="epoch")
    ax.set_xlabel("I(X;T) [bits]")
    ax.set_ylabel("I(T;Y) [bits]")
    ax.set_title(f"{cell}\n{estimator}, mean of {len(members)} seeds", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def infoplanes(run_dir: Path, info: pd.DataFrame, runs: pd.DataFrame, estimator: str) -> list[Path]:
    """figures/infoplane_<cell>.png for every cell with at least one non-diverged run."""
    out = []
    for cell in sorted(runs.cell.unique()):
        if (runs[runs.cell == cell].diverged).all():
            continue
        out.append(infoplane(info, runs, cell, estimator, run_dir / "figures" / f"infoplane_{cell_slug(cell)}.png"))
    return out
