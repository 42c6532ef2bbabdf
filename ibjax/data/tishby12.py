"""The 12-bit task of Shwartz-Ziv & Tishby (2017), generated rather than shipped.

The original file (`var_u.mat`) holds all 4096 binary patterns of 12 bits and a label per pattern. No
generating script was ever published; the rule below reproduces all 4096 labels exactly (checked by
`tests/data/test_datasets.py` against the original file): the 12 bits sit on the vertices of an icosahedron and the
label thresholds a rotation-invariant pairwise "energy" of the active vertices.

References: Shwartz-Ziv & Tishby, "Opening the black box of deep neural networks via information", 2017.
"""

from __future__ import annotations

import numpy as np

N_BITS = 12

# Icosahedron on the 12 input bits (0-based columns): 30 edges and 6 antipodal pairs.
EDGES = (
    (0, 1), (0, 3), (0, 5), (0, 10), (0, 11), (1, 2), (1, 3), (1, 4), (1, 11), (2, 3),
    (2, 4), (2, 8), (2, 9), (3, 8), (3, 10), (4, 6), (4, 9), (4, 11), (5, 6), (5, 7),
    (5, 10), (5, 11), (6, 7), (6, 9), (6, 11), (7, 8), (7, 9), (7, 10), (8, 9), (8, 10),
)  # fmt: skip
ANTIPODES = ((0, 9), (1, 7), (2, 5), (3, 6), (4, 10), (8, 11))
THRESHOLD = 430


def all_patterns(n_bits: int = N_BITS) -> np.ndarray:
    """All 2^n_bits binary rows in lexicographic order: row i is the binary of i, most significant bit first."""
    i = np.arange(2**n_bits, dtype=np.int64)[:, None]
    shifts = np.arange(n_bits - 1, -1, -1, dtype=np.int64)[None, :]
    return ((i >> shifts) & 1).astype(np.uint8)


def icosahedral_labels(x: np.ndarray, threshold: int = THRESHOLD) -> np.ndarray:
    """y = 1 exactly when 114 n - 11 n^2 + 24 a - 12 c >= threshold.

    n: active bits; a: edges with both ends active; c: antipodal pairs with both ends active.
    """
    x = np.asarray(x, dtype=np.int64)
    n = x.sum(axis=1)
    a = sum(x[:, i] * x[:, j] for i, j in EDGES)
    c = sum(x[:, i] * x[:, j] for i, j in ANTIPODES)
    energy = 114 * n - 11 * n**2 + 24 * a - 12 * c
    return (energy >= threshold).astype(np.int32)


def tishby12() -> tuple[np.ndarray, np.ndarray]:
    """The 12-bit dataset: X uint8 [4096, 12] (row i = binary of i, MSB first), y int32 [4096] (2118 ones)."""
    x = all_patterns(N_BITS)
    return x, icosahedral_labels(x)
