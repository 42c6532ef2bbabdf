"""Bad input stops the sweep with exit 2 and one paragraph naming the key, value or path; no traceback, and
nothing written (or lost). The CLI's own `main` is called in this process: the same code path as
`python -m ibjax.sweep` without a new interpreter per case (tests/sweep/test_cli.py runs the subprocess)."""

from __future__ import annotations

import pytest
import yaml

from ibjax.sweep.__main__ import main
from tests.helpers import small_spec


def run_main(capsys, tmp_path, raw_or_bytes, *args):
    spec = tmp_path / "spec.yaml"
    if isinstance(raw_or_bytes, bytes):
        spec.write_bytes(raw_or_bytes)
    else:
        spec.write_text(yaml.safe_dump(raw_or_bytes))
    code = main([str(spec), "--out", str(tmp_path / "o"), "--no-report", *args])
    err = capsys.readouterr().err
    return code, err


BAD = [
    ({"grid.activation": ["tanh", "tahn"]}, "grid.activation[1]", "known: tanh, relu"),
    ({"train.learning_rate": -0.1}, "train.learning_rate", "greater than 0"),
    ({"grid.activation": []}, "grid.activation", "empty list"),
    ({"train.epoch": 10}, "train.epoch", "allowed here: epochs"),
    ({"trian": {"epochs": 3}}, "trian", "allowed here: name, description, data"),
    ({"grid.hidden": [[10, 0, 3]]}, "grid.hidden[0][1]", "greater than 0"),
    ({"train.optimizer": "adamw"}, "train.optimizer", "'sgd', 'momentum' or 'adam'"),
    ({"mi.estimators": [{"kind": "binning", "correction": "grassberger"}]}, "mi.estimators[0].correction",
     "'none', 'miller_madow' or 'jackknife'"),
    ({"mi.estimators": [{"kind": "kde", "correction": "jackknife"}]}, "correction: only for kinds 'binning', 'idnns'",
     "not 'kde'"),
    ({"data.dataset": "mat", "data.path": "no/such/file.mat"}, "data.path", "not found"),
    ({"grid.activation": ["tanh", "relu", "tanh"]}, "grid: activation: repeated value(s) 'tanh'", "once"),
    ({"grid.hidden": [[5, 3], [5, 3]]}, "hidden: repeated value(s) [5, 3]", "once"),
    ({"grid.seed": [0, 1, 1]}, "seed: repeated value(s) 1", "once"),
    ({"grid.seed": [-1, 2]}, "grid.seed", "greater than or equal to 0"),
    ({"train.epochs": 10**12}, "train.epochs", "less than or equal to 10000000"),
    ({"train.batch_size": 5000}, "train.batch_size: 5000 is larger than the training set (3481", "'full'"),
    ({"grid.batch_size": [256, 4000]}, "grid.batch_size[1]: 4000 is larger", "'full'"),
    # data and its variants
    ({"grid.train_fraction": [0.05, 1.0]}, "grid.train_fraction: 1 must be below 1", "test set"),
    ({"grid.train_fraction": [0.0, 0.5]}, "grid.train_fraction[0]", "greater than 0"),
    ({"data.train_fraction": 1.2}, "data.train_fraction", "less than or equal to 1"),
    ({"grid.label_noise": [0.5, 1.5]}, "grid.label_noise[1]", "less than or equal to 1"),
    ({"data.label_noise": -0.1}, "data.label_noise", "greater than or equal to 0"),
    ({"data.mi_sample": {"n": 5000}}, "data.mi_sample.n: 5,000 rows asked for", "at most 4,096"),
    ({"data.dataset": "idx", "data.path": "no/such/folder"}, "data.path: folder not found", "t10k-images"),
    ({"data.dataset": "idx"}, "dataset 'idx' needs data.path", "fashion-mnist"),
    ({"data.dataset": "tfds"}, "dataset 'tfds' needs data.name", "mnist"),
    ({"data.path": "x.mat"}, "path: only for datasets 'mat' and 'idx'", "tishby12"),
    ({"data.train_rows": 100}, "train_rows: only with split 'official'", "train_fraction"),
    ({"data.dataset": "digits", "data.split": "official"}, "split 'official'", "no official split"),
    ({"data.name": "mnist"}, "name: only for dataset 'tfds'", "tishby12"),
    # the regression task and its estimator
    ({"data.dataset": "teacher", "data.label_noise": 0.2}, "label_noise: not for dataset 'teacher'", "continuous"),
    ({"data.dataset": "teacher", "data.split": "official", "grid.label_noise": [0.0, 0.5]},
     "grid.label_noise: not for dataset 'teacher'",
     "continuous"),
    ({"data.teacher": {"snr": 2.0}}, "teacher: only for dataset 'teacher'", "tishby12"),
    ({"data.dataset": "teacher", "data.teacher": {"snr": 0}}, "data.teacher.snr", "greater than 0"),
    ({"data.dataset": "teacher", "data.teacher": {"inputs": 10, "relevant_inputs": 10}},
     "relevant_inputs: 10 must be below inputs (10)", "null for all relevant"),
    ({"mi.estimators": [{"kind": "gaussian", "noise_var": 0}]}, "mi.estimators[0].noise_var", "greater than 0"),
    ({"mi.estimators": [{"kind": "gaussian", "n_bins": 10}]}, "kind 'gaussian' has no bins", "n_bins"),
]


@pytest.mark.parametrize("changes,key,hint", BAD, ids=[b[1][:40] for b in BAD])
def test_bad_spec_is_one_paragraph_with_exit_2(capsys, tmp_path, changes, key, hint):
    code, err = run_main(capsys, tmp_path, small_spec(**changes))
    assert code == 2, err
    assert key in err and hint in err, err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("content", [b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "name: caf\xe9\n".encode("latin-1")])
def test_a_spec_that_is_not_text(capsys, tmp_path, content):
    code, err = run_main(capsys, tmp_path, content)
    assert code == 2 and "not a text file" in err and "spec.yaml" in err and "Traceback" not in err


@pytest.mark.parametrize("content,hint", [
    (b"MATLAB 5.0 MAT-file, truncated" + bytes(range(40)), "not a readable MATLAB .mat file"),
    (None, "missing variable(s) ['y']"),
])
def test_a_corrupt_or_foreign_mat_file(capsys, tmp_path, content, hint):
    import numpy as np
    import scipy.io

    path = tmp_path / "data.mat"
    if content is None:
        scipy.io.savemat(path, {"F": np.zeros((8, 3))})
    else:
        path.write_bytes(content)
    code, err = run_main(capsys, tmp_path, small_spec(**{"data.dataset": "mat", "data.path": str(path)}))
    assert code == 2 and str(path) in err and hint in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


def test_out_is_a_file(capsys, tmp_path):
    (tmp_path / "o").write_text("not a folder")
    code, err = run_main(capsys, tmp_path, small_spec())
    assert code == 2 and "cannot write the run directory" in err and "Traceback" not in err
    assert (tmp_path / "o").read_text() == "not a folder"  # untouched


def test_a_damaged_manifest_is_named(capsys, tmp_path):
    raw = small_spec()
    out = tmp_path / "o"
    out.mkdir()
    from ibjax.spec import to_yaml, validate

    (out / "spec.yaml").write_text(to_yaml(validate(raw)))
    (out / "manifest.json").write_text('{"status": "runn')
    code, err = run_main(capsys, tmp_path, raw, "--resume")
    assert code == 2 and "manifest.json cannot be read" in err and "--force" in err and "Traceback" not in err
    assert (out / "manifest.json").read_text() == '{"status": "runn'  # left as it was, for the user to look at


@pytest.mark.parametrize("args,hint", [
    (["sweeps/activation_grid.yaml", "--set", "train.epochs=-5"], "train.epochs"),
    (["sweeps/activation_grid.yaml", "--set", "grid.activation=[tanh, mish]"], "unknown activation 'mish'"),
    (["sweeps/activation_grid.yaml", "--set", "nonsense"], "expected KEY=VALUE"),
    (["sweeps/activation_grid.yaml", "--shard", "5/2"], "need 0 <= I < N"),
])
def test_bad_command_line(capsys, monkeypatch, args, hint):
    from tests.helpers import ROOT

    monkeypatch.chdir(ROOT)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert hint in err and "Traceback" not in err


def test_yaml_syntax_error(capsys, tmp_path):
    code, err = run_main(capsys, tmp_path, b"train: {epochs: 3\n")
    assert code == 2 and "not valid YAML" in err and "Traceback" not in err


def test_a_truncated_idx_file_names_the_file(capsys, tmp_path):
    from ibjax.data.idx import FILES
    from tests.data.test_images import fake_idx_folder

    fake_idx_folder(tmp_path / "imgs", n_train=40, n_test=20)
    target = tmp_path / "imgs" / (FILES["train", "labels"] + ".gz")
    import gzip

    raw = gzip.decompress(target.read_bytes())
    target.write_bytes(gzip.compress(raw[:-3]))
    code, err = run_main(capsys, tmp_path, small_spec(**{"data.dataset": "idx", "data.path": str(tmp_path / "imgs")}))
    assert code == 2 and str(target) in err and "truncated" in err and "Traceback" not in err, err
    assert not (tmp_path / "o").exists()


UNIONS = [
    ("train.batch_size=0", "train.batch_size: expected a positive integer or 'full' (got 0)"),
    ("grid.batch_size=[0, full]", "grid.batch_size[0]: expected a positive integer or 'full' (got 0)"),
    ("mi.estimators=[{kind: kde, noise_var: 0}]",
     "mi.estimators[0].noise_var: expected a positive number or 'loo' (got 0)"),
    # each estimator kind is a class of its own: its keys, the kinds, and which kind a stray key belongs to
    ("mi.estimators=[{kind: kde, colour: 1}]",
     "mi.estimators[0].colour: unknown key; allowed here: kind, bound, noise_var, max_samples, name"),
    ("mi.estimators=[{kind: kdx}]",
     "mi.estimators[0].kind: expected one of binning, idnns, kde, exact, noisy, knn, gaussian (got 'kdx')"),
    ("mi.estimators=[{kind: knn, bins: quantile}]", "mi.estimators[0]: bins: only for kind 'binning', not 'knn'"),
]


@pytest.mark.parametrize("override,line", UNIONS, ids=[u[0] for u in UNIONS])
def test_a_value_of_no_allowed_form_says_every_form_and_names_its_set(capsys, tmp_path, override, line):
    """A value that fits no branch of a union is one line saying what is allowed; a problem that an override
    caused names that --set, not the spec file."""
    code, err = run_main(capsys, tmp_path, small_spec(), "--set", override)
    assert code == 2 and line in err and f"(from --set {override!r})" in err and "Traceback" not in err
    assert "invalid --set override of" in err and not (tmp_path / "o").exists()


def test_a_misspelt_set_is_blamed_on_the_set(capsys, tmp_path):
    code, err = run_main(capsys, tmp_path, small_spec(), "--set", "mi.estimators=[{kind: binnig}]")
    assert code == 2 and "(got 'binnig') (from --set 'mi.estimators=[{kind: binnig}]')" in err
    assert "invalid --set override of" in err


@pytest.mark.parametrize("what", ["empty", "directory"])
def test_an_empty_spec_or_a_directory_is_not_run(capsys, tmp_path, what):
    target = tmp_path / ("s.yaml" if what == "empty" else "d")
    target.write_text("") if what == "empty" else target.mkdir()
    code = main([str(target), "--out", str(tmp_path / "o"), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and not (tmp_path / "o").exists()
    assert ("is empty" in err and "name: defaults" in err) if what == "empty" else "is a directory, not a spec" in err


@pytest.mark.parametrize("args,hint", [
    (["--resume", "{tmp}/typo"], "nothing to resume in {tmp}/typo: no such directory"),
    (["{spec}", "--out", "{tmp}/typo", "--resume"], "nothing to resume in {tmp}/typo: no such directory"),
    (["--resume", "{tmp}"], "nothing to resume in {tmp}: no spec.yaml there"),
    ([], "give a sweep spec"),
])
def test_resume_with_nothing_to_resume_exits_2(capsys, tmp_path, args, hint):
    """A typo in the path is the likely cause: say so, start nothing."""
    spec = tmp_path / "s.yaml"
    spec.write_text(yaml.safe_dump(small_spec()))
    code = main([a.format(tmp=tmp_path, spec=spec) for a in args] + ["--no-report"])
    err = capsys.readouterr().err
    assert code == 2 and hint.format(tmp=tmp_path) in err and "Traceback" not in err
    assert not (tmp_path / "typo").exists()
