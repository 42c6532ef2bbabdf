"""Saxe et al.'s (2018, Section 4) linear teacher: Gaussian inputs, a linear map plus noise, and the exact
generalization error of an affine student. The task of `data.dataset: teacher` (ibjax.data.task), the
regression family's dataset.

X ~ N(0, Sigma_X) with Sigma_X = I / Ni; Y = W_o X + eps_o, eps_o ~ N(0, sigma_o^2 I), W_o with i.i.d. N(0, 1)
entries. The signal-to-noise ratio is that of the drawn teacher, exactly: SNR = tr(W_o Sigma_X W_o^T) /
(No sigma_o^2), so sigma_o^2 follows from the requested SNR and W_o. The training set (P samples) is drawn once;
the test distribution is known, so a linear student W's generalization error is exact:
E_g = tr[(W_o - W) Sigma_X (W_o - W)^T] + No sigma_o^2 (the expected squared error on a fresh sample).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Teacher(NamedTuple):
    w_o: np.ndarray  # [No, Ni]
    cov_x: np.ndarray  # [Ni, Ni]
    noise_var: float  # sigma_o^2
    x_train: np.ndarray  # [P, Ni]
    y_train: np.ndarray  # [P, No]
    x_test: np.ndarray  # [n_test, Ni]: fresh draws from the same distribution
    y_test: np.ndarray  # [n_test, No]


def make_teacher(n_inputs: int = 100, n_outputs: int = 1, snr: float = 1.0, n_train: int = 100,
                 seed: int = 0, n_test: int = 0, n_relevant: int | None = None) -> Teacher:
    """The teacher, its P = n_train training samples (the paper: Ni = 100, one output, SNR 1, P = Ni) and n_test
    fresh samples (drawn after the training samples, so that P samples are the same whatever n_test). n_relevant:
    only the first n_relevant inputs reach Y (W_o is 0 on the others: Saxe et al.'s task-irrelevant inputs)."""
    if snr <= 0:
        raise ValueError(f"snr must be positive, got {snr}")
    rng = np.random.default_rng(seed)
    cov_x = np.eye(n_inputs) / n_inputs
    w_o = rng.normal(size=(n_outputs, n_inputs))
    if n_relevant is not None:
        w_o[:, n_relevant:] = 0.0
    noise_var = float(np.trace(w_o @ cov_x @ w_o.T) / (n_outputs * snr))
    x = rng.normal(scale=np.sqrt(1.0 / n_inputs), size=(n_train, n_inputs))
    y = x @ w_o.T + rng.normal(scale=np.sqrt(noise_var), size=(n_train, n_outputs))
    x_test = rng.normal(scale=np.sqrt(1.0 / n_inputs), size=(n_test, n_inputs))
    y_test = x_test @ w_o.T + rng.normal(scale=np.sqrt(noise_var), size=(n_test, n_outputs))
    return Teacher(w_o, cov_x, noise_var, x, y, x_test, y_test)


def generalization_error(w, teacher, bias=None, xp=np):
    """E_g of an affine student y = w x + bias (w [No, Ni]: its end-to-end map): tr[(W_o - W) Sigma_X (W_o - W)^T]
    + |bias|^2 + No sigma_o^2 (X has mean 0, so a bias adds its square to every prediction's error). `teacher`:
    anything with w_o, cov_x and noise_var (a Teacher, or the task's TeacherConsts on the device); xp: numpy (a
    float) or jax.numpy (inside the compiled step, where the engine computes each network's E_g)."""
    d = teacher.w_o - xp.asarray(w)
    b2 = 0.0 if bias is None else xp.sum(xp.square(bias))
    e_g = xp.trace(d @ teacher.cov_x @ d.T) + b2 + teacher.w_o.shape[0] * teacher.noise_var
    return float(e_g) if xp is np else e_g
