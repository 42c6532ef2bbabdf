"""The run-directory contract: names written once and read back the same, atomic writes, and a run directory
written by an earlier version of ibjax (before the package layout, tests/rundir/old_run_v0_1: 2 seeds x
tanh/relu x adam/momentum, 12 epochs) still loads, reports and groups into the same cells."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

import ibjax
from ibjax.models.mlp import MLP
from ibjax.report import write_report
from ibjax.rundir import atomic_write, cell_name, deepest_hidden, layer_order, part_name, shard_tag
from ibjax.rundir.contract import GRID_AXES, cell_settings
from ibjax.sweep import expand_grid

OLD = Path(__file__).parent / "old_run_v0_1"


def test_old_run_directory_loads_and_reports(tmp_path):
    rd = ibjax.load(OLD)
    assert len(rd.runs) == 8 and rd.manifest["status"] == "done"
    assert set(rd.info.layer) == set(MLP((12, 10, 7, 5, 4, 3, 2), ("tanh",) * 5).layer_names)
    d = tmp_path / "old"
    shutil.copytree(OLD, d)
    tables = write_report(d, figures=False)
    assert (d / "REPORT.md").is_file() and len(tables["verdicts"]) == 8 * 6
    comp = tables["comparisons"]
    # adam vs momentum differ in the optimizer and its momentum (unset for adam): two settings, so no pair.
    assert set(comp.setting) == {"activation"}


def test_cells_and_run_ids_of_old_runs_are_reproduced():
    """The sweep file that made the old directory (old_run_v0_1.yaml) gives today the same resolved spec (so
    --resume sees no changed key), the same run ids and the same cells (the report groups them as before)."""
    from ibjax.rundir.layout import spec_differences
    from ibjax.spec import load_spec, resolved_defaults, to_yaml

    spec = load_spec(OLD.with_suffix(".yaml"))
    old_spec, defaults = yaml.safe_load((OLD / "spec.yaml").read_text()), resolved_defaults()
    assert spec_differences(old_spec, yaml.safe_load(to_yaml(spec)), defaults) == []
    # ... but a later key set away from its default is a difference
    changed = yaml.safe_load(to_yaml(spec))
    changed["data"]["label_noise"] = 0.5
    assert spec_differences(old_spec, changed, defaults) == ["data.label_noise: None -> 0.5"]
    old = pd.read_parquet(OLD / "runs.parquet").set_index("run_id")
    assert {r.run_id(spec): r.cell() for r in expand_grid(spec)} == old.cell.to_dict()


def test_cell_name_leaves_out_unset_settings():
    s = {"activation": "tanh", "hidden": (10, 7), "optimizer": "momentum", "learning_rate": 4e-4, "momentum": 0.9,
         "batch_size": "full", "quantize_bits": None, "noise_std": float("nan")}
    assert cell_name(s) == "activation=tanh,hidden=10-7,optimizer=momentum,lr=0.0004,momentum=0.9,batch=full"
    assert cell_name({**s, "quantize_bits": 8, "noise_std": 0.1}).endswith(",batch=full,quantize=8,noise=0.1")
    # and reads back: the settings the cell states, as text, '' for those it leaves out
    back = cell_settings(cell_name(s))
    assert back["hidden"] == "10-7" and back["batch_size"] == "full" and back["learning_rate"] == "0.0004"
    assert back["quantize_bits"] == back["noise_std"] == back["channels"] == ""
    assert set(back) == set(GRID_AXES)
    with pytest.raises(ValueError, match="no grid axis"):
        cell_settings("activation=tanh,colour=red")


def test_layer_names_and_order():
    assert MLP((12, 10, 7, 5, 2), ("tanh",) * 3).layer_names == ("h1", "h2", "h3", "out")  # the family names them
    assert layer_order(["out", "h10", "h2", "h1", "h2"]) == ["h1", "h2", "h10", "out"]
    assert deepest_hidden(["out", "h10", "h2"]) == "h10" and deepest_hidden(["out"]) is None
    assert part_name(3) == "bucket-0003"
    assert part_name(3, shard_tag(1, 4)) == "shard-0001-of-0004-bucket-0003"


def test_atomic_write_leaves_the_old_file_or_the_new_one(tmp_path):
    path = tmp_path / "t.parquet"
    atomic_write(path, lambda tmp: tmp.write_bytes(b"old"))

    def fails(tmp: Path):
        tmp.write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        atomic_write(path, fails)
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["t.parquet"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_written_files_get_the_mode_of_any_new_file(tmp_path, umask):
    """Tables, JSON and the report are readable by whoever the umask lets read new files (a collaborator on a
    shared cluster folder), as the figures are; the private mode of the temporary file must not stay."""
    import os
    import stat

    from ibjax.rundir.store import write_json, write_table

    old = os.umask(umask)
    try:
        write_json(tmp_path / "m.json", {"a": 1})
        write_table(tmp_path / "t.parquet", pd.DataFrame({"a": [1]}))
        (tmp_path / "plain.txt").write_text("x")  # what open() gives under this umask
    finally:
        os.umask(old)
    want = stat.S_IMODE((tmp_path / "plain.txt").stat().st_mode)
    assert want == 0o666 & ~umask
    for name in ("m.json", "t.parquet"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == want, name


def test_tables_with_their_run_settings_beside_them():
    """`RunDirectory.with_settings()`: info (or metrics, gradients) with the cell, seed and grid-axis columns of
    each row's run, also for a run directory written by an earlier version."""
    rd = ibjax.load(OLD)
    info = rd.with_settings()
    assert len(info) == len(rd.info) and {"cell", "seed", "activation", "hidden"} <= set(info.columns)
    for rid, g in info.groupby("run_id"):
        run = rd.runs.set_index("run_id").loc[rid]
        assert (g.cell == run.cell).all() and (g.activation == run.activation).all()
    assert len(rd.with_settings("metrics")) == len(rd.metrics)
    with pytest.raises(ValueError, match="'info', 'metrics' or 'gradients'"):
        rd.with_settings("runs")


def test_a_spec_yaml_from_before_estimator_kinds_were_classes_still_resumes(tmp_path):
    """Earlier versions stored every estimator with every kind's keys (one flat class). Such a spec.yaml still
    loads for `--resume DIR` (as each kind's own configuration) and shows no difference to the spec it came from;
    a key of another kind away from its old default is still refused."""
    from ibjax.rundir.layout import spec_differences
    from ibjax.spec import ESTIMATOR_KINDS, SpecError, load_resolved_spec, resolved_defaults, to_yaml, validate
    from ibjax.sweep.programs import ESTIMATOR_FACTORIES

    assert set(ESTIMATOR_FACTORIES) == set(ESTIMATOR_KINDS)  # each kind registered with its factory
    flat = {"kind": "binning", "n_bins": 30, "range": "auto", "bins": "uniform", "space": "activation",
            "width": None, "bound": "upper", "noise_var": 0.001, "k": 5, "dim": 4, "weighted": False,
            "max_samples": None, "name": None}
    raw = {"mi": {"estimators": [{"kind": "kde", "bound": "lower", "max_samples": 256},
                                 {"kind": "knn", "k": 3, "dim": 2}, {"n_bins": 12}]}}
    new = yaml.safe_load(to_yaml(validate(raw)))
    old = yaml.safe_load(to_yaml(validate(raw)))
    old["mi"]["estimators"] = [{**flat, **e} for e in raw["mi"]["estimators"]]
    assert spec_differences(old, new, resolved_defaults()) == []
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(old))
    assert to_yaml(load_resolved_spec(path)) == to_yaml(validate(raw))
    old["mi"]["estimators"][0]["dim"] = 7  # a knn key on the kde estimator: never written by any version
    path.write_text(yaml.safe_dump(old))
    with pytest.raises(SpecError, match=r"mi.estimators\[0\]: dim: only for kind 'knn', not 'kde'"):
        load_resolved_spec(path)
