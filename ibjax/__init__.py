"""ibjax: train hundreds of small networks at once and measure their information planes on device.

The packages follow the data flow: spec -> data, models -> train (the compiled chunk and its host loop) ->
sweep (plan, programs, run directory) -> rundir (the files' contract) -> report (verdicts, intervals, figures).
A notebook needs only the names below and `ibjax.report`'s. Importing ibjax changes nothing global (no XLA flags,
no JAX config, no matplotlib backend): `configure_process()` does what the command lines do first.
"""

from ibjax._runtime import configure_process
from ibjax._version import __version__
from ibjax.rundir.layout import RunDirError
from ibjax.rundir.store import RunDirectory, load
from ibjax.spec import SpecError, SweepSpec, load_spec

__all__ = [
    "RunDirError",
    "RunDirectory",
    "SpecError",
    "SweepSpec",
    "__version__",
    "configure_process",
    "load",
    "load_spec",
]
