"""Analysis of run directories: per-run verdicts, per-cell summaries with intervals, paired comparisons,
correlations, REPORT.md and figures. Reads run directories only (ibjax.rundir), nothing of training.

In a notebook::

    import ibjax
    from ibjax import report
    rd = ibjax.load("runs/activation_grid")
    verdicts = report.run_verdicts(rd.info, rd.runs, rd.manifest.n_mi_samples)
    summary = report.summarize(verdicts, rd.runs)

`python -m ibjax.report RUN_DIR` writes everything into the run directory (__main__.py).
"""

from ibjax.report.comparisons import compare_cells, correlations, one_setting_pairs
from ibjax.report.intervals import (
    bootstrap_band,
    bootstrap_ci,
    holm,
    mcnemar_exact,
    paired_bootstrap_diff,
    spearman_ci,
    tango_interval,
    wilson_interval,
)
from ibjax.report.labels import cell_labels, cell_slug
from ibjax.report.summary import agreement, cells, sensitivity, summarize
from ibjax.report.verdicts import DEFAULT_SETTINGS, VerdictSettings, run_verdicts, trajectory_verdict
from ibjax.report.write import draw_figures, write_report
from ibjax.rundir.contract import layer_order

__all__ = [
    "DEFAULT_SETTINGS",
    "VerdictSettings",
    "agreement",
    "bootstrap_band",
    "bootstrap_ci",
    "cell_labels",
    "cell_slug",
    "cells",
    "compare_cells",
    "correlations",
    "draw_figures",
    "holm",
    "layer_order",
    "mcnemar_exact",
    "one_setting_pairs",
    "paired_bootstrap_diff",
    "run_verdicts",
    "sensitivity",
    "spearman_ci",
    "tango_interval",
    "summarize",
    "trajectory_verdict",
    "wilson_interval",
    "write_report",
]
