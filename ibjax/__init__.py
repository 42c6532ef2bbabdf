"""ibjax: train hundreds of small networks at once and measure their information planes on device."""

import jax as _jax

# Exact symbol packing needs uint64 and 1e-9-bit entropies need float64. Everything on the network side is
# created with explicit float32 dtypes, so this flag changes only the MI bookkeeping.
_jax.config.update("jax_enable_x64", True)

__version__ = "0.1.0"
