"""Memoization on the contents of arrays, for the atlas's pure statistics.

The specification curve (ibjax.atlas.sensitivity) computes each claim's entries and pooled effect under every
specification: ~80 000 effects and ~8 000 pooled effects for the library's studies, of which a few hundred are
distinct (an exclusion rule that excludes no network, or a threshold every network passes, gives the values of
another specification). The functions are pure, so a result is looked up by what it was computed from.
"""

from __future__ import annotations

import functools

import numpy as np

MAX_ENTRIES = 100_000  # per function; cleared when full (a long session analysing many atlases)


def _key(a):
    if isinstance(a, np.ndarray):
        return (a.dtype.str, a.shape, a.tobytes())
    if isinstance(a, (list, tuple)):
        return (type(a).__name__, tuple(_key(x) for x in a))
    return a  # numbers, strings, frozen dataclasses (Effect); anything unhashable is computed, not looked up


def by_content(fn):
    """`fn` memoized on its arguments' contents (arrays by dtype, shape and bytes). Its results must be immutable
    (they are shared between calls)."""
    cache: dict = {}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            key = (tuple(_key(a) for a in args), tuple(sorted((k, _key(v)) for k, v in kwargs.items())))
            return cache[key]
        except KeyError:
            pass
        except TypeError:  # an unhashable argument (a pandas object): no lookup
            return fn(*args, **kwargs)
        if len(cache) >= MAX_ENTRIES:
            cache.clear()
        cache[key] = result = fn(*args, **kwargs)
        return result

    wrapper.cache = cache
    return wrapper
