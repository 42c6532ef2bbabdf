"""Plain NumPy references the estimators are tested against, written once. All entropies and MI in bits.

Each is the textbook definition (row entropies by np.unique) or a port of a published code's algorithm, so
an agreement to 1e-9 bits means the JAX estimator computes exactly that.
"""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp


def row_entropy(rows) -> float:
    """H in bits of the empirical distribution of the rows of a 2-D array (each distinct row a symbol)."""
    _, c = np.unique(np.asarray(rows), axis=0, return_counts=True)
    p = c / c.sum()
    return float(-(p * np.log2(p)).sum())


def joint_entropies(rows, labels) -> tuple[float, float]:
    """H(T), H(T, Y) of symbol rows and their labels."""
    rows = np.asarray(rows).reshape(len(labels), -1)
    return row_entropy(rows), row_entropy(np.c_[rows, labels])


def symbol_mi(rows, labels) -> tuple[float, float]:
    """(I(X;T), I(T;Y)) of a deterministic layer: H(T), and H(T) + H(Y) - H(T, Y)."""
    h_t, h_ty = joint_entropies(rows, labels)
    return h_t, h_t + row_entropy(np.asarray(labels)[:, None]) - h_ty


def class_conditional_mi(rows, labels) -> tuple[float, float]:
    """ibsgd's and Lorenzen et al.'s form: I(X;T) = H(T), I(T;Y) = H(T) - sum_y p(y) H(T | y)."""
    h_t = row_entropy(rows)
    cond = sum((labels == y).mean() * row_entropy(rows[labels == y]) for y in np.unique(labels))
    return h_t, h_t - cond


def uniform_bins(acts, n_bins=30, lo=-1.0, hi=1.0) -> np.ndarray:
    """clip(floor((a - lo) / (hi - lo) * n_bins), 0, n_bins - 1) per unit, in float64 (lo, hi may be per unit)."""
    a = np.asarray(acts, np.float64)
    return np.clip(np.floor((a - lo) / (hi - lo) * n_bins), 0, n_bins - 1).astype(int)


def idnns_mi(data, labels, num_of_bins=30) -> tuple[float, float]:
    """The IDNNs algorithm (information_process.py / calc_information_from_mat), re-implemented in NumPy."""
    bins = np.linspace(-1, 1, num_of_bins)
    digitized = bins[np.digitize(np.squeeze(data.reshape(1, -1)), bins) - 1].reshape(len(data), -1)
    b2 = np.ascontiguousarray(digitized).view(np.dtype((np.void, digitized.dtype.itemsize * digitized.shape[1])))
    _, unique_inverse, counts = np.unique(b2, return_index=False, return_inverse=True, return_counts=True)
    p_ts = counts / counts.sum()
    h2 = -np.sum(p_ts * np.log2(p_ts))
    h2y = 0.0
    for y in np.unique(labels):
        inv = unique_inverse.ravel()[labels == y]
        _, c = np.unique(inv, return_counts=True)
        p = c / c.sum()
        h2y += (labels == y).mean() * -np.sum(p * np.log2(p))
    return h2, h2 - h2y  # I(X;T) = H(T) (H(T|X) = 0), I(T;Y) = H(T) - H(T|Y)


def ibsgd_kde(h, labels, var, bound) -> tuple[float, float]:
    """A NumPy port of ibsgd's kde.py (entropy_estimator_kl / _bd, kde_condentropy), in bits."""
    n, d = h.shape

    def h_kl(x, v):
        dists = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        lse = logsumexp(-dists / (2 * v), axis=1)
        return d / 2.0 + np.mean(-lse + np.log(len(x)) + d / 2.0 * np.log(2 * np.pi * v))

    def h_bd(x, v):
        return h_kl(x, 4 * v) + np.log(0.25) * d / 2.0

    ent = h_kl if bound == "upper" else h_bd
    h_t_given_x = d / 2.0 * (np.log(2 * np.pi * var) + 1)
    h_t = ent(h, var)
    h_t_given_y = sum((labels == y).mean() * ent(h[labels == y], var) for y in np.unique(labels))
    return (h_t - h_t_given_x) / np.log(2), (h_t - h_t_given_y) / np.log(2)


def mixture_mi_1d(centers, var) -> float:
    """Exact I(X;T) in bits for T = c_X + N(0, var), X uniform over the centers: 1-D numerical integration."""
    s = np.sqrt(var)
    t = np.linspace(centers.min() - 10 * s, centers.max() + 10 * s, 400_001)
    dens = np.exp(-((t[:, None] - centers[None, :]) ** 2) / (2 * var)).mean(1) / np.sqrt(2 * np.pi * var)
    p = np.where(dens > 0, dens, 1.0)
    h_t = -np.sum(dens * np.log(p)) * (t[1] - t[0])
    return (h_t - 0.5 * np.log(2 * np.pi * np.e * var)) / np.log(2)


def kl_entropy_ref(points, k=5) -> float:
    """Kozachenko-Leonenko entropy in nats with scipy's k-d tree (an independent implementation)."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma, gammaln

    points = np.asarray(points, np.float64)
    n, d = points.shape
    eps = cKDTree(points).query(points, k + 1)[0][:, k]  # neighbour 0 is the point itself
    return float(digamma(n) - digamma(k) + d / 2 * np.log(np.pi) - gammaln(d / 2 + 1) + d * np.mean(np.log(eps)))


def weighted_kl_entropy_ref(points, k) -> float:
    """Berrett, Samworth & Yuan's weighted KL entropy in nats: minimum-norm weights from the normal equations
    (G G^T lambda = e_1, w = G^T lambda; G's rows: ones, then Gamma(j + 2l/d) / Gamma(j) for l = 1..floor(d/4)),
    log xi_(j),i = -psi(j) + log V_d + log(n - 1) + d log rho_(j),i, with scipy's k-d tree."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma, gammaln

    points = np.asarray(points, np.float64)
    n, d = points.shape
    j = np.arange(1, k + 1)
    g = np.stack([np.ones(k)] + [np.exp(gammaln(j + 2 * l / d) - gammaln(j)) for l in range(1, d // 4 + 1)])
    w = g.T @ np.linalg.solve(g @ g.T, np.eye(len(g))[0])
    rho = cKDTree(points).query(points, k + 1)[0][:, 1:]
    log_xi = -digamma(j)[None] + d / 2 * np.log(np.pi) - gammaln(d / 2 + 1) + np.log(n - 1) + d * np.log(rho)
    return float(np.mean(log_xi @ w))


def kl_label_mi_ref(points, labels, k=5) -> float:
    """I(T;Y) in nats: KL entropy of all points minus the class-weighted KL entropies within each class."""
    labels = np.asarray(labels)
    h_given = sum(np.mean(labels == y) * kl_entropy_ref(points[labels == y], k) for y in np.unique(labels))
    return kl_entropy_ref(points, k) - h_given


def ksg_ref(x, t, k=5) -> float:
    """KSG algorithm 1 in nats with scipy's k-d tree (max-norm; marginal counts strictly inside eps)."""
    from scipy.spatial import cKDTree
    from scipy.special import digamma

    x, t = np.asarray(x, np.float64), np.asarray(t, np.float64)
    n = len(x)
    eps = cKDTree(np.hstack([x, t])).query(np.hstack([x, t]), k + 1, p=np.inf)[0][:, k]
    count = lambda pts: np.array([len(cKDTree(pts).query_ball_point(p, np.nextafter(e, 0), p=np.inf)) - 1
                                  for p, e in zip(pts, eps)])
    return float(digamma(k) + digamma(n) - np.mean(digamma(count(x) + 1) + digamma(count(t) + 1)))
