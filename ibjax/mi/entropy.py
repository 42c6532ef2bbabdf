"""Exact entropies of discrete symbols inside jit. Bits, float64.

On the CPU the symbols are counted by a hash-table kernel (`ibjax.native`, ~3-5x faster than XLA's sort);
elsewhere, and as the reference it is tested against: one sort, find runs, count.

The sort path in XLA (static shapes, vmaps, any platform). Why one uint64 key: on XLA's CPU backend a sort on
one integer key is ~6x faster than a lexicographic sort on (symbol, label) (91 ms vs 541 ms for 768 x 4096
rows). The label goes into the key's lowest digits, so after one sort equal symbols are adjacent and, within a
symbol, equal labels too: H(T) and H(T, Y) from one pass.

Bias corrections (`correction`): the plug-in entropy of N samples underestimates the true entropy by about
(m - 1) / 2N nats (m: the symbols seen). "miller_madow" adds that term; "jackknife" averages the N leave-one-out
plug-in entropies (Efron & Stein; Nothnagel & Geiger compare both for information planes). Each is a function
of the counts c_b of the symbols, and of the same form as the plug-in entropy, A(N) - (1/N) sum_b phi(c_b), in
bits:
  none          A = log2 N                         phi(c) = c log2 c
  miller_madow  A = log2 N - 1 / (2 N ln 2)        phi(c) = c log2 c - 1 / (2 ln 2)        (c >= 1)
  jackknife     A = N log2 N - (N-1) log2 (N-1)    phi(c) = c (c log2 c - (c-1) log2 (c-1))
(the jackknife's N H - (N-1)/N sum_i H_-i, with H_-i the entropy of the counts less row i's, simplifies to
this), so the native kernel and the sort path count exactly as before and only sum another phi.

When the symbol and the label fit in 64 bits the key is an exact mixed-radix number (no collisions). When they
do not (wide layers), the symbol's words are hashed to 64 - b bits (b = label bits); two distinct rows among N
then collide with probability below N^2 / 2^(65 - b) (4e-12 for N = 4096, b = 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from ibjax import native

# The bias corrections of a counted entropy, in the order of the native kernel's `correction` attribute.
CORRECTIONS = ("none", "miller_madow", "jackknife")


def entropy_from_run_starts(starts_N: jnp.ndarray, correction: str = "none") -> jnp.ndarray:
    """Entropy in bits of the partition of N sorted items into runs; starts_N[i] is True where a run begins."""
    n = starts_N.shape[0]
    run_id_N = jnp.cumsum(starts_N.astype(jnp.int32)) - 1
    # Integer counts with the sortedness hint: 35 % faster than a float64 scatter-add on XLA's CPU backend
    # (43 ms vs 66 ms for 768 x 4096 items); exact either way.
    counts = jax.ops.segment_sum(jnp.ones(n, jnp.int32), run_id_N, num_segments=n, indices_are_sorted=True)
    return entropy_from_counts(counts.astype(jnp.float64), correction)


X64_MESSAGE = ("ibjax's MI estimators need JAX's 64-bit types (uint64 symbol keys, float64 entropy sums) and they "
               "are off: call ibjax.configure_process() first (the command lines do; importing ibjax does not), "
               "or jax.config.update('jax_enable_x64', True)")


def require_x64() -> None:
    """Refuse to trace an estimator without 64-bit types: JAX would silently truncate uint64 symbol keys to 32 bits
    (colliding symbols) and float64 sums to float32, and the MI would be wrong without a word."""
    if not jax.config.jax_enable_x64:
        raise RuntimeError(X64_MESSAGE)


def entropy_from_counts(counts: jnp.ndarray, correction: str = "none") -> jnp.ndarray:
    """Entropy in bits of the distribution given by non-negative counts (zeros allowed): the plug-in estimate,
    or its Miller-Madow or jackknife bias correction (see the module doc)."""
    require_x64()
    if correction == "none":
        p = counts / jnp.sum(counts)
        return -jnp.sum(jnp.where(counts > 0, p * jnp.log2(jnp.where(counts > 0, p, 1.0)), 0.0))
    n = jnp.sum(counts)
    a, phi = _corrected_terms(counts, n, correction)
    return a - jnp.sum(jnp.where(counts > 0, phi, 0.0)) / n


def _xlog2x(x):
    return jnp.where(x > 0, x * jnp.log2(jnp.where(x > 0, x, 1.0)), 0.0)


def _corrected_terms(c, n, correction: str):
    """(A(N), phi(c)) of a corrected entropy A - sum phi(c_b) / N (module doc)."""
    if correction == "miller_madow":
        half = 1.0 / (2.0 * jnp.log(2.0))
        return jnp.log2(n) - half / n, _xlog2x(c) - half
    if correction == "jackknife":
        return _xlog2x(n) - _xlog2x(n - 1.0), c * (_xlog2x(c) - _xlog2x(c - 1.0))
    raise ValueError(f"unknown entropy correction {correction!r}; known: {', '.join(CORRECTIONS)}")


def _starts(sorted_N: jnp.ndarray) -> jnp.ndarray:
    return jnp.concatenate([jnp.ones((1,), bool), sorted_N[1:] != sorted_N[:-1]])


def _splitmix64(x):
    x = x + jnp.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> 30)) * jnp.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> 27)) * jnp.uint64(0x94D049BB133111EB)
    return x ^ (x >> 31)


def symbol_entropies(codes_NxK: jnp.ndarray, labels_N: jnp.ndarray, *, radix: int | None,
                     n_classes: int, method: str = "auto", correction: str = "none"
                     ) -> tuple[jnp.ndarray, jnp.ndarray]:
    """H(T) and H(T, Y) in bits; row i's symbol is the tuple codes_NxK[i] (uint64 words).

    radix: exclusive bound of the single word's values when K == 1 (None if unknown).
    labels_N: integers in [0, n_classes).
    method: "sort" (XLA sort, any platform), "native" (the CPU hash-table kernel, `ibjax.native`) or
    "auto": native where the program runs on the CPU and the kernel could be built, sort elsewhere. Both are
    exact when K == 1 (and, for "sort", radix * n_classes <= 2^64); wider symbols are hashed to 64 bits
    (collision probability below N^2 / 2^64 for either path).
    correction: the plug-in entropies, or their Miller-Madow or jackknife correction (`CORRECTIONS`).
    """
    require_x64()  # before the native kernel, which would only say 'expected U64 but got U32'
    code = CORRECTIONS.index(correction)  # ValueError naming an unknown one, before tracing either path
    sort = lambda c, y: _sort_entropies(c, y, radix=radix, n_classes=n_classes, correction=correction)
    if method == "sort":
        return sort(codes_NxK, labels_N)
    keys = codes_NxK[:, 0] if codes_NxK.shape[1] == 1 else hash_words(codes_NxK)
    count = lambda c, y: native.symbol_entropies(keys, y, n_classes, code)
    if method == "native":
        return count(codes_NxK, labels_N)
    return native.dispatch("counting", count, sort, codes_NxK, labels_N)


# Up to this many words a row's hash is an unrolled chain (fused with what makes the words); more words are
# hashed by a loop. Unrolled, a conv layer's 1 352 words were ~20 000 operations in one fused kernel: 5.4 s of XLA
# compile for the hash alone (0.05 s as a loop, which also ran faster: 0.23 against 0.92 ms for 256 rows).
UNROLL_WORDS = 8


def hash_words(codes_NxK: jnp.ndarray) -> jnp.ndarray:
    """One 64-bit splitmix64 hash per row of uint64 words, chained over the words in order."""
    h = jnp.zeros(codes_NxK.shape[0], jnp.uint64)
    if codes_NxK.shape[1] > UNROLL_WORDS:  # the same chain, rolled
        return lax.scan(lambda h, w: (_splitmix64(h ^ w), None), h, codes_NxK.T)[0]
    for j in range(codes_NxK.shape[1]):
        h = _splitmix64(h ^ codes_NxK[:, j])
    return h


def _sort_entropies(codes_NxK: jnp.ndarray, labels_N: jnp.ndarray, *, radix: int | None,
                    n_classes: int, correction: str = "none") -> tuple[jnp.ndarray, jnp.ndarray]:
    """The portable path: one sort of uint64 keys with the label in the lowest digits (see module doc)."""
    n, k = codes_NxK.shape
    labels = labels_N.astype(jnp.uint64)
    if k == 1 and radix is not None and radix * n_classes <= 2**64:
        key = codes_NxK[:, 0] * jnp.uint64(n_classes) + labels
        key = lax.sort(key)
        symbol = key // jnp.uint64(n_classes)
    else:
        shift = max(1, (n_classes - 1).bit_length())
        key = lax.sort((hash_words(codes_NxK) << jnp.uint64(shift)) | labels)
        symbol = key >> jnp.uint64(shift)
    t_starts = _starts(symbol)
    # H(T) and H(T, Y) counted as one batch of two: the same counts and the same run time, and half the code
    # for XLA to compile per layer and estimator (an accelerator-path chunk of one 3-layer MLP with two binning
    # estimators, on the CPU: 3.9-4.4 -> 3.0-3.2 s of compile).
    h = jax.vmap(lambda s: entropy_from_run_starts(s, correction))(jnp.stack([t_starts, t_starts | _starts(key)]))
    return h[0], h[1]


def mi_from_codes(codes_NxK: jnp.ndarray, labels_N: jnp.ndarray, *, radix: int | None,
                  n_classes: int | None, correction: str = "none") -> tuple[jnp.ndarray, jnp.ndarray]:
    """(I(X;T), I(T;Y)) in bits of a deterministic discrete layer whose row symbols are codes_NxK, X uniform
    over the rows: I(X;T) = H(T), I(T;Y) = H(T) + H(Y) - H(T, Y), every entropy with the same `correction`.
    n_classes None: N (always a valid bound)."""
    n_classes = codes_NxK.shape[0] if n_classes is None else n_classes
    h_t, h_ty = symbol_entropies(codes_NxK, labels_N, radix=radix, n_classes=n_classes, correction=correction)
    return h_t, h_t + label_entropy(labels_N, correction) - h_ty


def label_entropy(labels_N: jnp.ndarray, correction: str = "none") -> jnp.ndarray:
    """H(Y) in bits of integer labels in [0, N) (a count, no sort)."""
    return entropy_from_counts(jnp.bincount(labels_N, length=labels_N.shape[0]).astype(jnp.float64), correction)
