"""Progress as a person expects it: a tqdm bar on a terminal, one plain line per chunk in logs and SLURM."""

from __future__ import annotations

import io

from ibjax.sweep.console import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def drive(stream) -> str:
    p = Progress(total_net_epochs=3 * 20, stream=stream)
    p.bucket("bucket 1/1", 3)
    p.started(1.5)
    for done in (10, 20):
        p(done, 20, 0.0)
    p.finish_bucket(20)
    p.close()
    return stream.getvalue()


def test_plain_lines_when_stderr_is_a_log():
    text = drive(io.StringIO())
    lines = text.strip().splitlines()
    assert lines[0] == "[bucket 1/1] 3 networks initialised and compiled in 1.5 s: training"
    assert lines[1].startswith("[bucket 1/1] epoch 10/20 (50% of sweep) | 3 nets |") and "ETA" in lines[1]
    assert lines[2].startswith("[bucket 1/1] epoch 20/20 (100% of sweep)") and len(lines) == 3


def test_a_bar_on_a_terminal():
    text = drive(Terminal())
    assert "3 networks initialised and compiled" in text  # the start line stays a line of its own
    assert "60.0/60.0" in text and "net-epochs" in text and "100%" in text  # the bar ran to the end
    assert "ETA" not in text  # no plain per-chunk lines under a bar


def test_quiet_prints_nothing():
    stream = Terminal()
    p = Progress(10, stream=stream, enabled=False)
    p.bucket("b", 1)
    p.started(0.1)
    p(10, 10, 0.0)
    p.close()
    assert stream.getvalue() == ""


def test_progress_writes_to_stderr_as_it_is_now(monkeypatch):
    """Not to the stderr of the moment ibjax was imported: a notebook or a test that redirects stderr later (the
    suite caught a bar writing to a closed capture of an earlier test)."""
    import sys

    first, now = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    first.close()  # what an earlier redirection leaves behind
    monkeypatch.setattr(sys, "stderr", now)
    bar = Progress(10, bar=False)
    bar.say("hello")
    assert now.getvalue() == "hello\n"
