"""Interrupt a real sweep (SIGTERM, SIGKILL), resume it, and get exactly the uninterrupted sweep's tables."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ibjax.rundir import TABLES, read_table
from tests.helpers import ROOT, checkpoints_exist, run_cli, small_spec, use_code_path

KEYS = {"runs": ["run_id"], "info": ["run_id", "epoch", "layer", "estimator"], "metrics": ["run_id", "epoch"],
        "gradients": ["run_id", "epoch", "layer"]}


def spec_file(tmp_path: Path, kind: str = "mlp") -> Path:
    raw = small_spec()
    raw["train"] = {**raw.get("train", {}), "epochs": 120, "chunk_epochs": 8}
    raw["mi"] = {"schedule": {"every": 10}}
    raw["model"] = {"hidden": [6, 4, 3], "activation": "tanh"}
    # Two buckets. The file says 1 seed; every run below overrides it to 2 with --set, as a user shrinking or
    # growing a sweep from the command line does: a resume must keep the override.
    raw["grid"] = {"seed": 1, "optimizer": ["sgd", "adam"]}
    if kind == "conv":  # a conv net on 8x8 digits; dropout (a key per minibatch) in one bucket of two
        raw["data"] = {"dataset": "digits", "train_fraction": 0.8}
        raw["model"] = {"kind": "conv", "channels": [4, 8], "kernel_size": 3, "pool": 2, "padding": "same",
                        "hidden": [8], "activation": "tanh"}
        raw["train"].update(epochs=32, chunk_epochs=4, batch_size=128, learning_rate=3e-3)
        raw["grid"] = {"seed": 1, "dropout": [0.0, 0.1]}
    raw["output"] = {"plots": False}
    path = tmp_path / "resume.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


_REFERENCES: dict[str, tuple[Path, Path]] = {}


@pytest.fixture
def reference(tmp_path_factory, request, monkeypatch):
    """The uninterrupted sweep of one model kind (`request.param`: "mlp", "conv", or "KIND@accelerator" for the
    code an accelerator runs, which the test then runs too), run once per parameter for the whole module: pytest
    would set up a module-scoped fixture again for every parameter set that names the same kind."""
    kind, _, path = request.param.partition("@")
    use_code_path(monkeypatch, path or "cpu")  # for the test as well, and the sweeps it starts (environment)
    if request.param not in _REFERENCES:
        d = tmp_path_factory.mktemp(f"ref-{kind}")
        spec = spec_file(d, kind)
        proc = run_cli("ibjax.sweep", str(spec), "--out", str(d / "run"), "--no-report", "--quiet", *OVERRIDES)
        assert proc.returncode == 0, proc.stderr
        _REFERENCES[request.param] = spec, d / "run"
    return _REFERENCES[request.param]


def tables(run: Path) -> dict:
    return {name: read_table(run, name).sort_values(KEYS[name]).reset_index(drop=True) for name in TABLES}


OVERRIDES = ("--set", "grid.seed=2")


def start(spec: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ibjax.sweep", str(spec), "--out", str(out), "--no-report",
                             "--quiet", *OVERRIDES], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def wait_for(cond, proc, timeout=240):
    t = time.monotonic()
    while not cond():
        assert proc.poll() is None, f"the sweep ended before it could be interrupted:\n{proc.stderr.read()}"
        assert time.monotonic() - t < timeout, "timed out"
        time.sleep(0.01)


@pytest.mark.slow
# Both ways a sweep stops (SIGTERM: it checkpoints and exits 3; SIGKILL: it resumes from the last periodic
# checkpoint of a running bucket) for the MLP; for the conv family (its state, dropout keys included) the
# SIGKILL case, which restores a bucket mid-way; how a stop is handled does not depend on the family. The SIGKILL
# case again on the code an accelerator runs (XLA's training step instead of the native kernel), whose resumed
# chunks must be as deterministic.
@pytest.mark.parametrize("reference,sig", [("mlp", signal.SIGTERM), ("mlp", signal.SIGKILL),
                                           ("conv", signal.SIGKILL), ("mlp@accelerator", signal.SIGKILL)],
                         indirect=["reference"])
def test_interrupted_then_resumed_equals_uninterrupted(reference, tmp_path, sig):
    spec, ref = reference
    out = tmp_path / "run"
    proc = start(spec, out)
    # SIGTERM in the first bucket (it stops after the running chunk); SIGKILL in the second (the first
    # bucket's tables are on disk, the second resumes from its last checkpoint).
    wait_for(lambda: checkpoints_exist(out, 0 if sig == signal.SIGTERM else 1), proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=240)
    manifest = json.loads((out / "manifest.json").read_text())
    # The command to continue: what the interrupted sweep printed (SIGTERM), else the same form.
    hint = f"python -m ibjax.sweep --resume {out}"
    if sig == signal.SIGTERM:
        assert proc.returncode == 3, err
        assert manifest["status"] == "interrupted" and err.strip().splitlines()[-1].strip() == hint
    else:
        assert proc.returncode == -signal.SIGKILL and manifest["status"] == "running"
        assert manifest["buckets"][0]["status"] == "done"
    # Without --resume an unfinished run directory is refused; the spec file without its override is another
    # sweep, and the refusal says how to continue this one.
    refused = run_cli("ibjax.sweep", str(spec), "--out", str(out), "--no-report", "--quiet", *OVERRIDES)
    assert refused.returncode == 2 and "--resume" in refused.stderr
    other = run_cli("ibjax.sweep", str(spec), "--out", str(out), "--no-report", "--quiet", "--resume")
    assert other.returncode == 2 and "grid.seed: 2 -> 1" in other.stderr and hint in other.stderr
    resumed = run_cli(*hint.split()[2:], "--no-report", "--quiet")  # python -m <module> <args>
    assert resumed.returncode == 0, resumed.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "done" and manifest["resumed"] == 1
    assert any(b.get("resumed_at_chunk", 0) > 0 for b in manifest["buckets"])
    assert not (out / "checkpoints").exists()
    got, want = tables(out), tables(ref)
    for name in TABLES:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True)


@pytest.mark.parametrize("reference", ["mlp"], indirect=True)
def test_finished_and_changed(reference, tmp_path):
    spec, ref = reference
    again = run_cli("ibjax.sweep", str(spec), "--out", str(ref), "--no-report", *OVERRIDES)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    changed = run_cli("ibjax.sweep", str(spec), "--out", str(ref), "--no-report", *OVERRIDES,
                      "--set", "train.epochs=10")
    assert changed.returncode == 2 and "train.epochs: 120 -> 10" in changed.stderr
    assert "Traceback" not in changed.stderr


@pytest.mark.parametrize("reference", ["mlp"], indirect=True)
def test_full_disk_stops_cleanly_and_resume_completes(reference, tmp_path, monkeypatch, capsys):
    """A full disk while the second bucket's tables are written (an injected ENOSPC): exit 2, the message
    names the file and --resume; nothing finished is lost, and --resume gives the uninterrupted tables."""
    import errno

    from ibjax.sweep.__main__ import main

    spec, ref = reference
    out = tmp_path / "run"
    real = pd.DataFrame.to_parquet
    full = {"left": 1}

    def to_parquet(self, path, *args, **kw):
        if "bucket-0001" in str(path) and "info" in str(path) and full["left"]:
            full["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, path, *args, **kw)

    monkeypatch.setattr(pd.DataFrame, "to_parquet", to_parquet)
    args = [str(spec), "--out", str(out), "--no-report", "--quiet", *OVERRIDES]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and str(out / "info" / "bucket-0001.parquet") in err
    assert f"python -m ibjax.sweep --resume {out}" in err
    assert "Traceback" not in err
    assert (out / "info" / "bucket-0000.parquet").is_file()  # the first bucket is safe
    assert not list((out / "info").glob(".*"))  # no temporary left behind
    assert main(["--resume", str(out), "--no-report", "--quiet"]) == 0  # the stored spec, its override kept
    got, want = tables(out), tables(ref)
    for name in TABLES:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True)


SPECS = sorted((ROOT / "sweeps").glob("*.yaml")) + [ROOT / "examples" / "user_model.yaml"]


@pytest.mark.parametrize("path", SPECS, ids=[p.name for p in SPECS])
def test_the_stored_spec_resolves_to_itself(path, tmp_path):
    """`--resume DIR` reads the spec a run directory stores (every default filled in): for every sweep of the
    library and the user-model example it gives back exactly the spec that was stored."""
    from ibjax.spec import load_resolved_spec, load_spec, to_yaml

    spec = load_spec(path)
    (tmp_path / "spec.yaml").write_text(to_yaml(spec))
    assert to_yaml(load_resolved_spec(tmp_path / "spec.yaml")) == to_yaml(spec)
    longer = load_resolved_spec(tmp_path / "spec.yaml", ["train.epochs=7"])
    assert longer.train.epochs == 7 and to_yaml(longer) != to_yaml(spec)


@pytest.mark.parametrize("reference", ["mlp"], indirect=True)
def test_full_disk_inside_a_checkpoint_save_exits_2_and_resume_completes(reference, tmp_path, monkeypatch, capsys):
    """The disk fills while Orbax writes a checkpoint (its own error, as TensorStore raises it on a full
    tmpfs): exit 2 naming the checkpoint folder and the command that continues; --resume then gives the
    uninterrupted tables."""
    from ibjax.sweep.__main__ import main
    from ibjax.sweep.checkpoints import BucketCheckpoints

    spec, ref = reference
    out = tmp_path / "run"
    real = BucketCheckpoints.save
    full = {"left": 1, "at": 0}

    def save(self, next_chunk, state):
        full["at"] += 1
        if full["at"] == 3 and full["left"]:  # the third save: a checkpoint already exists before it
            full["left"] -= 1
            manager = self._mgr()
            real_save = manager.save

            def failing(*a, **kw):
                manager.save = real_save
                raise ValueError(f'RESOURCE_EXHAUSTED: Error writing "state.{next_chunk:06d}/0.0" in OCDBT '
                                 f'database at local file "{self.directory}/": No space left on device')
            manager.save = failing
        return real(self, next_chunk, state)

    monkeypatch.setattr(BucketCheckpoints, "save", save)
    assert main([str(spec), "--out", str(out), "--no-report", "--quiet", *OVERRIDES]) == 2
    err = capsys.readouterr().err
    assert "no space left" in err and "checkpoints" in err and "Traceback" not in err
    assert f"python -m ibjax.sweep --resume {out}" in err and not full["left"]
    assert main(["--resume", str(out), "--no-report", "--quiet"]) == 0
    got, want = tables(out), tables(ref)
    for name in TABLES:
        pd.testing.assert_frame_equal(got[name], want[name], check_exact=True)
