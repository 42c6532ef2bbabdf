"""Datasets stored as MATLAB files in the IDNNs layout (`F` inputs, `y` labels), e.g. g1.mat / g2.mat."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read `F` [N, D] and `y` [N] from a .mat file. Raises FileNotFoundError / KeyError with the path named."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    mat = scipy.io.loadmat(path)
    missing = [k for k in ("F", "y") if k not in mat]
    if missing:
        raise KeyError(f"{path}: missing variable(s) {missing}; expected 'F' (inputs) and 'y' (labels)")
    return np.asarray(mat["F"]), np.asarray(mat["y"]).ravel().astype(np.int32)
