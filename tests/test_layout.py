"""The package layout is the data flow: imports point one way (docs/design.md, "Packages and what may import
what"), and the run-directory contract is the only thing the sweep and the report share."""

from __future__ import annotations

import ast
from pathlib import Path

import ibjax
from ibjax.rundir import CELL_SETTINGS, GRID_AXES
from ibjax.spec import GridSpec

PACKAGE = Path(ibjax.__file__).parent

# Where a module lives -> the ibjax modules it may import (prefixes). Longest matching key wins.
ALLOWED = {
    "ibjax._runtime": (),
    "ibjax._version": (),
    "ibjax.native": ("ibjax.native",),
    "ibjax.rundir": ("ibjax.rundir",),
    "ibjax.mi.interface": (),
    "ibjax.threefry": (),
    "ibjax.mi": ("ibjax.mi", "ibjax.native", "ibjax.threefry"),
    "ibjax.models": ("ibjax.models", "ibjax.native", "ibjax.threefry"),
    "ibjax.spec": ("ibjax.models.activations",),
    "ibjax.data": ("ibjax.data", "ibjax.spec"),
    "ibjax.train": ("ibjax.train", "ibjax.data", "ibjax.models", "ibjax.mi", "ibjax.native", "ibjax.spec",
                    "ibjax.threefry"),
    "ibjax.report": ("ibjax.report", "ibjax.rundir"),
    # ibjax.mi.interface imports nothing: the atlas reads an estimator's ceiling under its bias correction there.
    "ibjax.atlas": ("ibjax.atlas", "ibjax.report", "ibjax.rundir", "ibjax.mi.interface"),
    # The command line (sweep/__main__.py) sets up its process with ibjax._runtime.configure_process().
    "ibjax.sweep": ("ibjax.sweep", "ibjax.spec", "ibjax.data", "ibjax.models", "ibjax.mi", "ibjax.native",
                    "ibjax.train", "ibjax.rundir", "ibjax.report", "ibjax._runtime"),
    "ibjax.slurm": ("ibjax.spec",),
    # validate trains linear networks on the teacher for its ground-truth task (the engine, not a sweep).
    "ibjax.validate": ("ibjax._runtime", "ibjax.mi", "ibjax.rundir", "ibjax.data", "ibjax.spec", "ibjax.models",
                       "ibjax.train"),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Every ibjax module a file imports, at any depth of the file (function-level imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == "ibjax"}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "ibjax":
            for a in node.names:  # `from ibjax import native` imports the module ibjax.native
                sub = f"{node.module}.{a.name}"
                is_module = (PACKAGE.parent / sub.replace(".", "/")).with_suffix(".py").is_file() or \
                    (PACKAGE.parent / sub.replace(".", "/")).is_dir()
                out.add(sub if is_module else node.module)
    return out


def rule(name: str) -> tuple[str, ...] | None:
    keys = [k for k in ALLOWED if name == k or name.startswith(k + ".")]
    return ALLOWED[max(keys, key=len)] if keys else None


def test_imports_point_down_the_data_flow():
    bad = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = module_name(path)
        if name == "ibjax":
            continue  # the public API re-exports from every stage
        allowed = rule(name)
        assert allowed is not None, f"{name}: a module with no layering rule (add it to ALLOWED and docs/design.md)"
        for target in imported(path):
            if target != "ibjax._version" and not any(target == a or target.startswith(a + ".") for a in allowed):
                bad.append(f"{name} imports {target}")
    assert not bad, "imports against the data flow:\n" + "\n".join(bad)


def test_every_stage_is_a_package_with_public_names():
    for stage in ("data", "models", "mi", "native", "train", "sweep", "rundir", "report"):
        mod = __import__(f"ibjax.{stage}", fromlist=["__all__"])
        assert (PACKAGE / stage / "__init__.py").is_file()
        if stage != "native":  # native exports functions by module (use, dispatch, available)
            assert mod.__all__, stage
            missing = [n for n in mod.__all__ if not hasattr(mod, n)]
            assert not missing, f"ibjax.{stage}.__all__ names what it lacks: {missing}"


def test_cell_settings_are_the_grid_axes():
    """One list: the grid's axes (less the seed) are the cell settings the report groups, compares and labels."""
    assert tuple(f for f in GridSpec.model_fields if f != "seed") == GRID_AXES
    assert CELL_SETTINGS == GRID_AXES
    # Run's fields, the axis table and a sweep over every axis: tests/rundir/test_axes.py


def test_public_api_for_notebooks():
    from ibjax import report

    for name in ("load", "RunDirectory", "RunDirError", "load_spec", "__version__"):
        assert name in ibjax.__all__ and hasattr(ibjax, name)
    for name in ("run_verdicts", "summarize", "compare_cells", "VerdictSettings", "cell_labels", "write_report"):
        assert name in report.__all__ and hasattr(report, name)


def test_no_file_points_outside_the_repository():
    """Users get the repository alone: code and docs cite docs/, never the developers' notes beside it."""
    root = PACKAGE.parent
    files = [*PACKAGE.rglob("*.py"), *(root / "docs").glob("*.md"), root / "README.md", root / "BUILD_NOTES.md",
             *(root / "sweeps").glob("*.yaml"), *(root / "benchmarks").glob("*.py"), *(root / "notebooks").glob("*")]
    bad = [str(f.relative_to(root)) for f in files
           if any(s in f.read_text() for s in ("DESIGN.md", "LITERATURE.md", "../shared"))]
    assert not bad, f"files that cite what the repository does not contain: {bad}"


def test_capabilities_are_declared_by_every_estimator_and_family():
    """The engine reads what it must know about an estimator or a model family from declared attributes (no
    isinstance or getattr probing): every estimator class and family declares them."""
    import ibjax.mi as mi
    from ibjax.models.conv import Conv
    from ibjax.models.flax_module import FlaxModule
    from ibjax.models.mlp import MLP

    estimators = [getattr(mi, n) for n in mi.__all__ if n[0].isupper() and hasattr(getattr(mi, n), "__call__")
                  and n not in ("LayerContext", "Limits", "MIEstimate", "MIEstimator")]
    assert len(estimators) == 11
    for cls in estimators:
        for capability in ("needs_net_input", "batched_lapack", "needs_linear_map", "continuous_targets"):
            assert isinstance(getattr(cls, capability), bool), (cls.__name__, capability)
    assert [c.__name__ for c in estimators if c.batched_lapack] == ["GaussianMI", "KNNEstimator"]
    assert [c.__name__ for c in estimators if c.needs_net_input] == ["OnNetInput"]
    assert [c.__name__ for c in estimators if c.needs_linear_map] == ["GaussianMI"]
    assert [c.__name__ for c in estimators if c.continuous_targets] == ["GaussianMI"]
    mlp = MLP((12, 10, 2), ("tanh",))
    conv = Conv((8, 8, 1), (4,), 3, (2,), "same", (8,), 10, ("tanh",), noise_std=0.1)
    flax = FlaxModule("m.py:Net", "{}", (8, 8, 1), 10)
    assert (mlp.native_kernel, mlp.stochastic, mlp.batches_on_cpu) == (True, False, True)
    assert (conv.native_kernel, conv.stochastic, conv.batches_on_cpu) == (False, True, False)
    assert (flax.native_kernel, flax.stochastic, flax.batches_on_cpu) == (False, False, False)
    assert dict(mlp.cpu_compiler_options) and not conv.cpu_compiler_options and not flax.cpu_compiler_options
    assert not MLP((12, 10, 2), ("tanh",), quantize_bits=8).native_kernel
    import ibjax.train as train

    for module in ("engine", "epoch", "measure"):  # the engine asks the family, never its kind
        source = (Path(train.__file__).parent / f"{module}.py").read_text()
        assert ".kind" not in source, module


def test_the_atlas_knows_the_specs_regression_datasets():
    from ibjax.atlas.studies import REGRESSION_DATASETS as ATLAS_REGRESSION
    from ibjax.spec import REGRESSION_DATASETS

    assert ATLAS_REGRESSION == REGRESSION_DATASETS


def test_every_kind_has_one_registry_entry():
    """Estimators, model families, datasets and optimizers: the kinds a spec accepts are the kinds the sweep can
    build, each registered once."""
    import typing

    from ibjax.data.task import DATASETS
    from ibjax.spec import DataSpec, ModelSpec, TrainSpec
    from ibjax.sweep.programs import FAMILIES
    from ibjax.train import OPTIMIZERS

    kinds = lambda cls, key: set(typing.get_args(cls.model_fields[key].annotation))
    assert kinds(ModelSpec, "kind") == set(FAMILIES)
    assert kinds(DataSpec, "dataset") == set(DATASETS)
    assert kinds(TrainSpec, "optimizer") == set(OPTIMIZERS)
