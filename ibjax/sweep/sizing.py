"""How many networks one compiled program may hold: XLA's own account of the program against device memory.

A bucket's chunk program is compiled ahead of time anyway. Sizing compiles each bucket whole, reads what the
executable needs per device (arguments + outputs + temporaries, XLA's buffer assignment), and when that is
over the budget splits the bucket into the fewest near-equal programs that fit, predicted from the measured
bytes per network and then checked by compiling them. Executables are cached by the engine, so a bucket that
fits costs no compile beyond the one training needs.

Budget per device: IBJAX_DEVICE_MEMORY if set, the memory of ONE device (e.g. "12GB" when another job shares
the GPU; on the CPU, one host device's share: one per core), the planning share below applied to it too; else on a
GPU or TPU, the allocator's limit less what is already in use, and on the CPU the memory this process may
still take (MemAvailable, and the cgroup limit a SLURM job runs under) shared among the host devices. Only a
fraction of it is planned for (`budget_fraction`): fragmentation, host-side copies and runtime buffers are not
in XLA's account. On the CPU the process grows ~1.24x the account per network
(benchmarks/program_memory.py: 707 vs 570 KiB), so 60 % is planned for there (real use <= ~75 %); 80 %
elsewhere, where XLA's allocator holds exactly the buffers it assigned (not yet measured on a GPU).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BUDGET_FRACTION = {"cpu": 0.6}
DEFAULT_BUDGET_FRACTION = 0.8
MAX_ROUNDS = 6  # predict-and-check rounds per group before giving up

_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6, "mib": 2**20,
          "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12, "tib": 2**40}


class SizingError(ValueError):
    """No split of a bucket fits the device memory (even one network per device is too large), or the memory
    given in IBJAX_DEVICE_MEMORY is not a size."""


def parse_bytes(text: str) -> int:
    """'12GB' -> 12e9, '512MiB' -> 512 * 2**20, '1e9' -> 1e9 (case-insensitive; k/m/g/t alone are binary)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][0-9]+)?)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise SizingError(f"IBJAX_DEVICE_MEMORY={text!r}: expected a size such as 12GB, 512MiB or 8e9")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


@dataclass(frozen=True)
class Budget:
    bytes_per_device: int  # what a program may take on each device (the fraction already applied)
    source: str  # where the number came from, for the progress line and the manifest


def budget_fraction(platform: str) -> float:
    """The share of a device's free memory that sizing plans for (see the module doc)."""
    return BUDGET_FRACTION.get(platform, DEFAULT_BUDGET_FRACTION)


def device_budget(devices) -> Budget:
    """The memory a program may take on each of `devices` (all of one kind; see the module doc)."""
    n = len(devices)
    fraction = budget_fraction(devices[0].platform)
    env = os.environ.get("IBJAX_DEVICE_MEMORY")
    if env:
        return Budget(int(parse_bytes(env) * fraction), f"IBJAX_DEVICE_MEMORY={env}")
    platform = devices[0].platform
    stats = [_memory_stats(d) for d in devices]
    if all(st and "bytes_limit" in st for st in stats):
        free = min(st["bytes_limit"] - st.get("bytes_in_use", 0) for st in stats)
        return Budget(int(free * fraction), f"{platform} allocator limit less in use")
    if platform != "cpu":  # an accelerator's memory is not the host's: do not guess
        raise SizingError(f"the {platform} devices report no memory limit (memory_stats() has no bytes_limit, e.g. "
                          f"with XLA_PYTHON_CLIENT_ALLOCATOR=platform): set IBJAX_DEVICE_MEMORY to one device's "
                          f"memory (e.g. IBJAX_DEVICE_MEMORY=80GB), or train.max_models_per_program")
    host, source = host_memory_available()
    return Budget(int(host / n * fraction), f"{source}, shared by {n} host device(s)")


# Host bytes per row of the long tables as pandas holds them (memory_usage(deep=True) of a 10^4-network run:
# info 87, metrics 44, gradients 50, runs 294), and the peak factor of consolidating them (the parts, their
# concatenation and the parquet encoder's copy are alive at once).
ROW_BYTES = {"info": 90, "metrics": 45, "gradients": 50, "runs": 300}
CONSOLIDATION_FACTOR = 3


def results_host_bytes(layers_R, n_mi_epochs: int, n_estimators: int) -> int:
    """Peak host memory of a sweep's result tables when they are merged at its end: per run, its logged epochs
    x (layers x estimators info rows + a metrics row + a gradients row per layer), and its runs row."""
    layers = int(sum(layers_R))
    rows = n_mi_epochs * (layers * n_estimators * ROW_BYTES["info"] + len(layers_R) * ROW_BYTES["metrics"]
                          + layers * ROW_BYTES["gradients"]) + len(layers_R) * ROW_BYTES["runs"]
    return int(rows * CONSOLIDATION_FACTOR)


def check_results_fit(layers_R, n_mi_epochs: int, n_estimators: int, label: str) -> tuple[int, int, str]:
    """(needed, available, source) bytes of host memory for the results; SizingError when they cannot fit."""
    need = results_host_bytes(layers_R, n_mi_epochs, n_estimators)
    avail, source = host_memory_available()
    if need > avail:
        raise SizingError(
            f"{label}: the results of {len(layers_R):,} networks x {n_mi_epochs} logged epochs need about "
            f"{fmt_bytes(need)} of host memory when merged, and this machine has {fmt_bytes(avail)} ({source}). "
            f"Log MI less often (mi.schedule), or run fewer networks per sweep (with --shard I/N each process "
            f"holds only its own shard's results; a report over all shards still reads them all).")
    return need, avail, source


def _memory_stats(device) -> dict | None:
    try:
        return device.memory_stats()
    except Exception:  # not implemented by this backend or plugin
        return None


def host_memory_available() -> tuple[int, str]:
    """Bytes this process may still allocate: MemAvailable, capped by the cgroup memory limit less its usage
    (a SLURM job's --mem, a container's limit) where one is set."""
    avail, source = None, "MemAvailable"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                avail = int(line.split()[1]) * 1024
    except OSError:
        pass
    if avail is None:  # not Linux: total physical memory as the best guess
        try:
            avail = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
            source = "physical memory"
        except (ValueError, OSError, AttributeError):
            avail, source = 8 * 2**30, "unknown (assumed 8 GiB)"
    room = cgroup_headroom()
    if room is not None and room < avail:
        return room, "cgroup memory limit less usage"
    return avail, source


def cgroup_headroom(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """The least (limit - usage) over this process's memory cgroup and its ancestors (v1 and v2), or None."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    best = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if controllers == "":
            base, limit_f, usage_f, cache_key = root, "memory.max", "memory.current", "inactive_file"
        elif "memory" in controllers.split(","):
            base, limit_f, usage_f = root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes"
            cache_key = "total_inactive_file"
        else:
            continue
        rel = Path(path.lstrip("/"))
        for d in (base / rel, *(base / q for q in rel.parents)):
            limit, usage = _read_int(d / limit_f), _read_int(d / usage_f)
            if limit is None or usage is None or limit >= 2**60:  # "max" or v1's "unlimited" sentinel
                continue
            # Usage counts the page cache of files read (a dataset): the inactive part is reclaimed on demand.
            room = max(limit - usage + _stat(d / "memory.stat", cache_key), 0)
            best = room if best is None else min(best, room)
    return best


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class ProgramMemory:
    """What one compiled program of a bucket needs on each device."""

    device_bytes: int  # XLA's account of one chunk call, per device
    fixed_bytes: int  # the part that does not grow with the networks (the task data, replicated)
    models_per_device: int  # networks each device holds (padding included)

    @property
    def bytes_per_model(self) -> float:
        return max(self.device_bytes - self.fixed_bytes, 0) / max(self.models_per_device, 1)


def parts_that_fit(n_runs: int, n_devices: int, budget: int, measure: Callable[[int], list[ProgramMemory]],
                label: str) -> int:
    """The fewest programs (near-equal parts) that a group of `n_runs` networks must be split into so that every
    part's measured memory is within `budget` per device. `measure(n_parts)` compiles the parts of that split
    and returns their memory; the split grows from the measured bytes per network until every part fits."""
    n_parts = 1
    for _ in range(MAX_ROUNDS):
        mems = measure(n_parts)
        worst = max(mems, key=lambda m: m.device_bytes)
        if worst.device_bytes <= budget:
            return n_parts
        room = budget - worst.fixed_bytes
        per_model = max(m.bytes_per_model for m in mems)
        if room <= 0 or worst.models_per_device <= 1 or per_model > room:
            raise SizingError(
                f"{label}: one network per device needs {fmt_bytes(worst.fixed_bytes + per_model)} "
                f"({fmt_bytes(worst.fixed_bytes)} of it the task data), over the budget of {fmt_bytes(budget)} "
                f"per device. Reduce the MI sample or the estimators' cost (e.g. kde max_samples), use a device "
                f"with more memory, or raise IBJAX_DEVICE_MEMORY if the detected memory is wrong.")
        fit_per_device = max(int(room // per_model), 1)
        needed = math.ceil(n_runs / (fit_per_device * min(n_devices, n_runs)))
        # Always progress: the prediction can be optimistic when XLA's temporaries grow faster than linearly.
        n_parts = min(max(needed, n_parts + 1), n_runs)
    raise SizingError(f"{label}: no split into at most {n_parts} programs fits {fmt_bytes(budget)} per device "
                      f"after {MAX_ROUNDS} rounds; set train.max_models_per_program by hand")


def fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} B"
