"""What a person sees and does while a sweep runs: one progress line per chunk, and SIGTERM / Ctrl-C."""

from __future__ import annotations

import signal
import sys
import threading
import time


def fmt_s(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class Progress:
    """Progress over the whole sweep: a tqdm bar when stderr is a terminal, else one plain line per chunk
    (logs, SLURM): bucket, epochs done, networks, throughput and ETA."""

    def __init__(self, total_net_epochs: int, stream=None, enabled: bool = True, bar: bool | None = None):
        # sys.stderr as it is now, not as it was at import (a notebook or a test may have redirected it since)
        stream = sys.stderr if stream is None else stream
        self.total, self.done_before, self.stream, self.enabled = total_net_epochs, 0, stream, enabled
        self.t0 = time.perf_counter()
        isatty = getattr(stream, "isatty", lambda: False)()
        self.bar = None
        if enabled and (isatty if bar is None else bar):
            from tqdm import tqdm

            self.bar = tqdm(total=total_net_epochs, unit=" net-epochs", unit_scale=True, file=stream,
                            dynamic_ncols=True, smoothing=0.1)

    def say(self, text: str) -> None:
        """A line of its own (above the bar, if there is one)."""
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    def bucket(self, label: str, n_models: int):
        self.label, self.n_models, self.last = label, n_models, 0
        if self.bar is not None:
            self.bar.set_description(f"{label} ({n_models:,} nets)")

    def started(self, setup_s: float) -> None:
        """The bucket's networks are on the device and its program is compiled: its first chunk starts."""
        self.say(f"[{self.label}] {self.n_models:,} networks initialised and compiled in {setup_s:.1f} s: training")

    def __call__(self, done: int, n_epochs: int, _elapsed: float):
        if not self.enabled:
            return
        done_all = self.done_before + done * self.n_models
        if self.bar is not None:
            self.bar.update(done_all - self.bar.n)
            return
        elapsed = time.perf_counter() - self.t0
        rate = done_all / max(elapsed, 1e-9)
        eta = (self.total - done_all) / max(rate, 1e-9)
        print(f"[{self.label}] epoch {done}/{n_epochs} ({100 * done_all / self.total:.0f}% of sweep) | "
              f"{self.n_models} nets | {rate:,.0f} net-epochs/s | elapsed {fmt_s(elapsed)} | ETA {fmt_s(eta)}",
              file=self.stream, flush=True)

    def finish_bucket(self, n_epochs: int):
        self.done_before += n_epochs * self.n_models

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class StopFlag:
    """SIGTERM/SIGINT set the flag (the sweep stops after the current chunk); a second signal abandons it."""

    def __init__(self):
        self.requested = False
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, _frame):
        if self.requested:
            raise KeyboardInterrupt  # second signal: abandon the chunk (the last checkpoint stays)
        self.requested = True
        print(f"\nibjax: {signal.Signals(signum).name} received: stopping after this chunk "
              f"(again to abandon it)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    def __call__(self) -> bool:
        return self.requested
