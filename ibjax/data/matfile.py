"""Datasets stored as MATLAB files in the IDNNs layout (`F` inputs, `y` labels), e.g. g1.mat / g2.mat."""

from __future__ import annotations

from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data file that cannot be used: unreadable, corrupt, or not in the expected layout. Names the file."""


def load_mat(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read `F` [N, D] and `y` [N] (integer labels) from a .mat file; DataError names the file and the problem."""
    import scipy.io

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # SciPy raises ValueError, TypeError, OSError ... for files that are not .mat
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(e).__name__}: {e})") from None
    missing = [k for k in ("F", "y") if k not in mat]
    if missing:
        raise DataError(f"{path}: missing variable(s) {missing}; expected 'F' (inputs, [N, D]) and 'y' (labels, N)")
    x, y = np.asarray(mat["F"]), np.asarray(mat["y"]).ravel()
    if x.ndim != 2 or len(x) != len(y) or len(y) < 2:
        raise DataError(f"{path}: expected F of shape [N, D] and N labels y, got F {list(x.shape)} and {len(y)} labels")
    if not (np.issubdtype(x.dtype, np.number) and np.issubdtype(y.dtype, np.number)) or not np.isfinite(x).all():
        raise DataError(f"{path}: F must hold finite numbers and y numbers (got {x.dtype} and {y.dtype})")
    if not np.array_equal(y, np.round(y)):
        raise DataError(f"{path}: the labels y must be integers (class ids), e.g. 0 and 1")
    return x, y.astype(np.int32)
