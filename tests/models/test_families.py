"""Model families: a stacked user Flax module trains as each network alone; bad user modules exit 2 by name."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from ibjax.data.task import load_task
from ibjax.spec import validate
from ibjax.sweep.__main__ import main
from ibjax.sweep.plan import expand_grid, make_buckets, mi_epochs
from ibjax.sweep.programs import Programs, bucket_consts
from ibjax.train.loop import run_program
from tests.helpers import ROOT

USER_MODEL = {
    "name": "fam", "data": {"dataset": "digits", "train_fraction": 0.8},
    "model": {"kind": "flax", "module": f"{ROOT}/examples/user_model.py:TinyCNN",
              "kwargs": {"channels": 4, "width": 8, "dropout": 0.2}},
    "train": {"epochs": 4, "batch_size": 64, "learning_rate": 3e-3, "chunk_epochs": 4},
    "mi": {"schedule": {"every": 2}}, "grid": {"seed": 3}, "output": {"plots": False},
}


def train(raw, runs=None):
    spec = validate(raw)
    task = load_task(spec.data)
    runs = runs or expand_grid(spec)
    b = make_buckets(runs)[0]
    programs = Programs(spec, task, task.device_data())
    res = run_program(programs.engine(b), [r.seed for r in b.runs], bucket_consts(b, task),
                      [r.learning_rate for r in b.runs], [0.0] * b.size, programs.data_of(b),
                      mi_epochs(spec.train.epochs, every=2), spec.train.epochs)
    return runs, res, programs.engine(b).family


def test_stacked_user_module_trains_as_each_alone():
    """3 networks in one program (sharded over the host devices) == each trained alone (one device)."""
    runs, together, fam = train(USER_MODEL)
    assert fam.layer_names == ("features", "hidden", "out")  # sow order, not alphabetical
    assert together.mi.shape[2] == 3
    for i, run in enumerate(runs):
        _, alone, _ = train(USER_MODEL, [run])
        np.testing.assert_allclose(together.metrics[:, i], alone.metrics[:, 0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(together.grads[:, i], alone.grads[:, 0], rtol=1e-3, atol=1e-6)
        np.testing.assert_allclose(together.mi[0, i], alone.mi[0, 0], atol=1e-9)
    assert together.metrics[-1, :, 1].min() > together.metrics[0, :, 1].max()  # it learns


BAD_MODULES = {
    "missing file": ("no_such_file.py:Net", None, "file not found"),
    "no such class": ("{examples}/user_model.py:Nope", None, "has no 'Nope'"),
    "not importable": ("no_such_pkg.models:Net", None, "no module named 'no_such_pkg'"),
    "import fails": ("{tmp}/broken.py:Net", "raise RuntimeError('boom')\n", "RuntimeError: boom"),
    "wrong shape": ("{tmp}/shape.py:Net", """
from flax import nnx
class Net(nnx.Module):
    def __init__(self, rngs):
        self.d = nnx.Linear(64, 3, rngs=rngs)
    def __call__(self, x):
        h = self.d(x.reshape(x.shape[0], -1))
        self.sow(nnx.Intermediate, "h", h)
        return h
""", "expected logits of shape (batch, 10)"),
    "no layer": ("{tmp}/silent.py:Net", """
from flax import nnx
class Net(nnx.Module):
    def __init__(self, rngs):
        self.d = nnx.Linear(64, 10, rngs=rngs)
    def __call__(self, x):
        return self.d(x.reshape(x.shape[0], -1))
""", "records no layer to measure"),
}


@pytest.mark.parametrize("case", list(BAD_MODULES))
def test_bad_user_module_exits_2_naming_it(capsys, tmp_path, case):
    ref, source, hint = BAD_MODULES[case]
    if source is not None:
        (tmp_path / ref.split("/")[-1].split(":")[0]).write_text(source)
    ref = ref.format(tmp=tmp_path, examples=ROOT / "examples")
    raw = {**USER_MODEL, "model": {"kind": "flax", "module": ref}}
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump(raw))
    code = main([str(spec), "--out", str(tmp_path / "o"), "--no-report", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and hint in err and "model.module" in err
    assert not (tmp_path / "o").exists()


def test_conv_needs_images(capsys, tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"model": {"kind": "conv"}, "train": {"epochs": 2}}))
    code = main([str(spec), "--out", str(tmp_path / "o"), "--no-report", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "needs image data" in err and "Traceback" not in err
