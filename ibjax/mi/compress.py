"""Lossy compression of a layer before a k-NN estimator (Butakov et al. 2024): PCA to `dim` dimensions.

The projection is fitted on the MI sample itself (per model, per logged epoch: the layer's covariance changes as it
trains) — the top `dim` eigenvectors of the sample covariance of the real units. kNN estimators lose their
accuracy quickly with dimension; MI of the compressed values is a lower bound of the layer's (data processing),
close to it when the discarded directions carry little variance. A layer with fewer than `dim` real units keeps
them all, rotated; padded units add coordinates that are zero (up to rounding), which distances ignore and the
entropy estimate must not count as dimensions (the caller passes the real dimension).
"""

from __future__ import annotations

import jax.numpy as jnp


def pca(acts_NxU, dim: int, unit_mask_U=None) -> jnp.ndarray:
    """[N, min(dim, U)] coordinates of the centred rows on the top principal axes (largest variance first).
    Padded units (mask False) are zeroed first; they add zero-variance axes only."""
    a = acts_NxU.astype(jnp.float32)
    if unit_mask_U is not None:
        a = jnp.where(unit_mask_U[None, :], a, 0.0)
    a = a - jnp.mean(a, axis=0, keepdims=True)
    # Always rotated onto the principal axes, even when nothing is dropped: k-NN's max-norm is not rotation
    # invariant, and a padded layer (zero columns beyond `dim`) must give what the same layer unpadded gives.
    cov = (a.T @ a) / a.shape[0]
    _, vecs = jnp.linalg.eigh(cov)  # ascending eigenvalues
    return a @ vecs[:, ::-1][:, :dim]
