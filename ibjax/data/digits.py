"""scikit-learn's 8x8 handwritten digits (1 797 images, 10 classes): a real image set that installs with pip.

Pixels are integers 0..16 (each the count of "on" pixels of a 4x4 block of the original 32x32 bitmap). No
official train/test split: the sweep splits it (stratified, data.train_fraction). For quick image runs and the
README's first image example; MNIST-type studies use `idx` or `tfds`.
"""

from __future__ import annotations

import numpy as np

PIXEL_MAX = 16


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 [1797, 8, 8] (values 0..16) and labels int32 [1797]."""
    from sklearn.datasets import load_digits as sk_load_digits  # the data ships inside scikit-learn

    d = sk_load_digits()
    return d.images.astype(np.uint8), d.target.astype(np.int32)
