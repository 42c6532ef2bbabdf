"""The atlas end to end: planted effects are found and planted nulls are not, a network counts once however often
it is given, exclusions are decided before the outcome, the compact tables give back the same atlas, and the
published atlas and the README's Results are what the committed tables say."""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pandas as pd
import pytest

from ibjax.atlas import CLAIMS, STUDIES, StudyTables, analyse, read_tables, study_tables, write_tables
from ibjax.atlas.endpoints import ENDPOINT
from ibjax.atlas.registry import (
    MEASURE_COLUMNS,
    NETWORK_COLUMNS,
    PHASE_COLUMNS,
    loss_fit_index,
    snr_fit_index,
    trajectory_levels,
)
from ibjax.rundir.contract import GRID_AXES
from ibjax.spec import load_spec
from tests.helpers import ROOT, run_cli

ATLAS = ROOT / "docs" / "results" / "atlas"


def _net_id(settings: dict, seed: int) -> str:
    return hashlib.sha256(repr((sorted(settings.items()), seed)).encode()).hexdigest()[:16]


def synthetic_study(name: str, cells: list[dict], n_seeds: int, rng: np.random.Generator,
                    seeds: range | None = None) -> StudyTables:
    """A study whose per-network levels are drawn directly: each cell dict holds its settings (activation,
    batch_size, ...) and `drop` (mean, sd) of I(X;T) after the fit, optionally `irr` / `rel` relative falls and
    `gap_slope` (generalization gap = 0.05 + slope * drop + noise)."""
    nets, meas = [], []
    for cell in cells:
        settings = {a: str(cell.get(a, "")) for a in GRID_AXES}
        settings.setdefault("activation", "tanh")
        for seed in (seeds or range(n_seeds)):
            rid = f"{name}-{_net_id(settings, seed)}"
            drop = rng.normal(*cell["drop"])
            fit = 10 ** rng.normal(*cell["fit"]) if "fit" in cell else np.nan
            gap = 0.05 + cell.get("gap_slope", 0.0) * drop + rng.normal(0, 0.01)
            nets.append({"study": name, "run_id": rid, "network_id": _net_id(settings, seed),
                         "cell": ",".join(f"{k}={v}" for k, v in settings.items() if v), "seed": seed, **settings,
                         "dataset": "tishby12", "model": "mlp", "epochs": 1000, "n_train": 3481,
                         "steps_per_epoch": 1 if settings["batch_size"] == "full" else 14, "train_acc": 1.0,
                         "test_acc": 1.0 - gap, "gap": gap, "diverged": False, "epochs_to_fit": fit})
            quantities = {"i_xt": (12.0, 6.0, drop)}
            if "irr" in cell:
                quantities["i_xt_irr"] = (6.0, 3.0, 6.0 * rng.normal(*cell["irr"]))
                quantities["i_xt_rel"] = (6.0, 3.0, 6.0 * rng.normal(*cell["rel"]))
            for q, (ceiling, level, fall) in quantities.items():
                for anchor in ("loss", "ity", "snr"):
                    for smooth in (1, 5):
                        meas.append({"study": name, "run_id": rid, "layer": "h5", "estimator": "binning30",
                                     "quantity": q, "anchor": anchor, "smooth": smooth, "budget": "epochs",
                                     "fit_epoch": 100, "end_epoch": 1000, "i_start": level, "i_fit": level,
                                     "i_max_pre": level, "i_end": level - fall, "ceiling": ceiling,
                                     "reliable": ceiling, "excluded": ""})
    return StudyTables(name, f"runs/{name}", pd.DataFrame(nets, columns=list(NETWORK_COLUMNS)),
                       pd.DataFrame(meas, columns=list(MEASURE_COLUMNS)))


def synthetic_depth_study(rng, effect: bool, n_seeds: int) -> StudyTables:
    """A depth study (tanh, minibatches, 1-4 hidden layers) whose phases are drawn directly. With `effect`,
    Shwartz-Ziv & Tishby's claims hold: epochs to generalize fall with depth, each deeper layer's compression lasts
    0.3 decades less, and the last layer's compression starts at the SNR transition (lag ~ 0); without, depth and
    layer do not matter and the onset lags the transition by 0.6 decades."""
    cells = [{"activation": "tanh", "batch_size": "256", "hidden": "-".join(["8"] * d),
              "drop": (1.0 if effect else 0.0, 0.4), "gap_slope": -0.03 if effect else 0.0} for d in range(1, 5)]
    study = synthetic_study("depth", cells, n_seeds, rng)
    rows = []
    for net in study.networks.itertuples():
        depth = len(net.hidden.split("-"))
        generalize = 400.0 / (depth if effect else 1.0) * np.exp(rng.normal(0, 0.2))
        snr = 100.0 * np.exp(rng.normal(0, 0.2))
        for index in range(1, depth + 1):
            onset = snr * 10 ** rng.normal(0.0 if effect else 0.6, 0.1) if index == depth else 50.0
            duration = 1.5 - (0.3 * index if effect else 0.0) + rng.normal(0, 0.1)
            for estimator in ("binning30", "kde_upper"):
                for window in (1, 5):
                    rows.append({"study": "depth", "run_id": net.run_id, "estimator": estimator, "smooth": window,
                                 "depth": depth, "index": index, "onset": onset, "fall_bits": 1.0,
                                 "compresses": True, "complete": True, "duration_decades": duration,
                                 "snr_epoch": snr, "generalize_epoch": generalize})
    study.phases = pd.DataFrame(rows, columns=list(PHASE_COLUMNS))
    return study


def planted(rng, effect: bool, n_seeds: int = 32) -> list[StudyTables]:
    """Five studies: activations (tanh vs relu), batch (minibatch vs full, tanh), irrelevant inputs, depth and
    random labels. With
    `effect`, every claim's prediction is true (tanh networks compress, more with minibatches than full batch and
    more than relu ones; more compression, smaller gap; X_irr falls more than X_rel; the depth study's phases as
    synthetic_depth_study says; random labels fit 0.4 decades later); without, every one is 0 (and compression
    starts well after the SNR transition)."""
    e = 1.0 if effect else 0.0
    slope = -0.03 if effect else 0.0
    a = synthetic_study("saxe_activations", [
        {"activation": "tanh", "batch_size": "256", "drop": (e, 0.4), "gap_slope": slope},
        {"activation": "relu", "batch_size": "256", "drop": (0.0, 0.4), "gap_slope": slope}], n_seeds, rng)
    b = synthetic_study("sgd_vs_gd", [
        {"activation": "tanh", "batch_size": "256", "optimizer": "sgd", "drop": (1.2 * e, 0.4), "gap_slope": slope},
        {"activation": "tanh", "batch_size": "full", "optimizer": "sgd", "drop": (0.4 * e, 0.4),
         "gap_slope": slope}], n_seeds, rng)
    c = synthetic_study("irrelevant_inputs", [
        {"activation": "tanh", "batch_size": "256", "inputs": "x", "drop": (0.8 * e, 0.4), "gap_slope": slope,
         "irr": (0.1 + 0.2 * e, 0.05), "rel": (0.1, 0.05)}], n_seeds, rng)
    d = synthetic_study("memorization", [
        {"activation": "tanh", "batch_size": "256", "label_noise": "0", "drop": (e, 0.4), "fit": (1.6, 0.1)},
        {"activation": "tanh", "batch_size": "256", "label_noise": "1.0", "drop": (e, 0.4),
         "fit": (1.6 + 0.4 * e, 0.1)}], n_seeds, rng)
    return [a, b, c, synthetic_depth_study(rng, effect, n_seeds), d]


def test_planted_effects_are_supported():
    _, claims = analyse(planted(np.random.default_rng(0), effect=True))
    decisions = dict(zip(claims.claim, claims.decision))
    assert decisions == {c.key: "supported" for c in CLAIMS}, claims[["claim", "estimate", "lo", "hi", "p_holm"]]


def test_planted_nulls_are_never_supported_and_equivalence_contradicts():
    _, claims = analyse(planted(np.random.default_rng(1), effect=False, n_seeds=96))
    c = claims.set_index("claim")
    assert not (c.decision == "supported").any(), c[["decision", "estimate", "lo", "hi"]]
    # With 96 networks per arm the intervals are narrow enough to show the effects are below the smallest of
    # interest (TOST): the claims that predicted them are contradicted, not left open.
    for claim in ("fit_then_compress", "sgd_noise", "saturating_only", "irrelevant_compressed",
                  "deeper_compress_faster", "random_labels_fit_later"):
        assert c.loc[claim, "tost_p"] < 0.05 and c.loc[claim, "decision"] == "contradicted", claim
    # A claim of coincidence is contradicted when its interval lies beyond the SESOI (a lag of 0.6 decades).
    assert c.loc["snr_marks_onset", "lo"] > 0.25 and c.loc["snr_marks_onset", "decision"] == "contradicted"


def test_a_network_counts_once_however_often_it_is_given():
    rng = np.random.default_rng(2)
    studies = planted(rng, effect=True)
    once_entries, once = analyse(studies)
    twice_entries, twice = analyse(studies + studies)
    cols = ["estimate", "lo", "hi", "k", "n", "decision"]
    pd.testing.assert_frame_equal(once[cols], twice[cols])
    assert (twice.n_repeats > 0).all() and (once.n_repeats == 0).all()
    # A second study that holds the first one's tanh networks (same settings and seeds: same network_id) plus
    # new seeds: only the new ones enter claim 1.
    again = synthetic_study("training_size", [{"activation": "tanh", "batch_size": "256", "drop": (1.0, 0.4)}],
                            0, rng, seeds=range(16, 48))
    entries, table = analyse(studies + [again])
    claim1 = [e for e in entries if e.claim == "fit_then_compress" and e.study == "saxe_activations"]
    # training_size comes first in the library: its 32 networks enter; saxe_activations' tanh cell keeps the
    # 16 it has that training_size does not.
    assert [e.effect.n for e in claim1] == [16] and claim1[0].n_repeats == 16


def test_exclusion_is_decided_before_the_outcome():
    fit = 3
    rising_to_the_ceiling_at_the_end = np.array([5.0, 6, 7, 8, 9, 11, 12, 12])
    lv = trajectory_levels(rising_to_the_ceiling_at_the_end, fit, 1, ceiling=12.0, reliable=12.0)
    assert lv["excluded"] == ""  # saturating after the fitting time says nothing about the window measured
    at_fit = np.array([5.0, 9, 11, 12, 11, 9, 8, 8])
    assert trajectory_levels(at_fit, fit, 1, 12.0, 12.0)["excluded"] == "saturated at fit"
    assert trajectory_levels(np.full(8, 12.0), fit, 1, 12.0, 12.0)["excluded"] == "saturated at start"
    assert trajectory_levels(at_fit, fit, 1, 14.0, 10.0)["excluded"] == "outside validated range"
    lv = trajectory_levels(at_fit, 2, 1, 14.0, 14.0)
    assert (lv["i_fit"], lv["i_end"]) == (11.0, 8.0)


def test_fitting_anchors():
    loss = np.r_[np.linspace(1.0, 0.1, 10), np.full(20, 0.1)]
    i = loss_fit_index(loss, 1)
    assert loss[i] <= 0.1 + 0.1 * 0.9 + 1e-12 and loss[i - 1] > 0.1 + 0.1 * 0.9
    snr = np.r_[np.full(5, 4.0), np.full(10, 0.2)]
    assert snr_fit_index(snr, 1) == 5


def test_compact_tables_round_trip(tmp_path):
    studies = planted(np.random.default_rng(4), effect=True, n_seeds=8)
    write_tables(studies, tmp_path / "t")
    back = read_tables(tmp_path / "t")
    assert [s.name for s in back] == [s.name for s in studies]
    a, b = analyse(studies)[1], analyse(back)[1]
    # The tables keep 6 significant digits (a run directory's atlas is rounded the same way before analysis).
    pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-4)


def test_registry_of_a_real_run_directory(tiny_run):
    s = study_tables(tiny_run)
    assert len(s.networks) == 8 and s.networks.network_id.nunique() == 8
    assert set(s.measures.layer) == {"h3"}  # the last hidden layer: never the softmax output
    assert {"loss", "ity", "snr"} <= set(s.measures.anchor)
    assert (s.measures.fit_epoch <= s.measures.end_epoch).all()
    # Phases of every network's hidden layers (h1..h3) under each estimator and smoothing window.
    assert set(s.phases["index"]) == {1, 2, 3} and (s.phases.depth == 3).all()
    assert s.phases.groupby(["estimator", "smooth"]).run_id.nunique().eq(8).all()
    assert not (s.phases.compresses & (s.phases.fall_bits <= 0)).any()


def test_atlas_cli_from_run_directories_and_from_its_tables(tiny_run, tmp_path):
    out = tmp_path / "atlas"
    proc = run_cli("ibjax.atlas", str(tiny_run), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    text = (out / "ATLAS.md").read_text()
    assert text.index("## Primary endpoints") < text.index("## Decisions") < text.index("Specification curve")
    assert "Studies not given" in text and "saxe_activations" in text
    claims = pd.read_csv(out / "claims.csv")
    assert list(claims.claim) == [c.key for c in CLAIMS]
    assert (out / "figures" / "decisions.png").stat().st_size > 0
    again = tmp_path / "again"
    proc = run_cli("ibjax.atlas", "--tables", str(out / "tables"), "--out", str(again))
    assert proc.returncode == 0, proc.stderr
    for name in ("ATLAS.md", "claims.csv", "entries.csv", "specifications.csv"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_atlas_cli_names_a_bad_input(tiny_run, tmp_path):
    proc = run_cli("ibjax.atlas", str(tiny_run), str(tmp_path / "nowhere"), "--out", str(tmp_path / "a"))
    assert proc.returncode == 2 and "nowhere" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("ibjax.atlas", "--tables", str(tmp_path / "none"), "--out", str(tmp_path / "a"), new_process=True)
    assert proc.returncode == 2 and "none" in proc.stderr and "Traceback" not in proc.stderr
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    for name in ("networks.csv", "measures.csv"):
        (wrong / name).write_text("a,b\n1,2\n")
    proc = run_cli("ibjax.atlas", "--tables", str(wrong), "--out", str(tmp_path / "a"))
    assert proc.returncode == 2 and "networks.csv: not an atlas table" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_published_atlas_is_what_its_committed_tables_give(tmp_path):
    proc = run_cli("ibjax.atlas", "--tables", str(ATLAS / "tables"), "--out", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr
    for name in ("ATLAS.md", "claims.csv", "entries.csv", "specifications.csv"):
        assert (tmp_path / "a" / name).read_text() == (ATLAS / name).read_text(), name


def test_the_readme_states_the_committed_decisions():
    claims = pd.read_csv(ATLAS / "claims.csv").set_index("claim")
    readme = (ROOT / "README.md").read_text()
    block = readme[readme.index("<!-- atlas-results -->"): readme.index("<!-- /atlas-results -->")]
    titles = {c.key: c.title for c in CLAIMS}
    for claim, row in claims.iterrows():
        line = next(ln for ln in block.splitlines() if titles[claim] in ln)
        assert f"**{row.decision}**" in line, (claim, line)
        shown = [float(x) for x in re.findall(r"-?\d+\.\d+", line)[:3]]
        est, lo, hi = (np.tanh(v) if ENDPOINT[claim].design == "correlation" else v
                       for v in (row.estimate, row.lo, row.hi))
        assert shown == pytest.approx([est, lo, hi], abs=0.006), (claim, line)


def test_every_study_of_the_library_is_a_valid_sweep_with_its_header():
    files = {p.name for p in (ROOT / "sweeps").glob("*.yaml")}
    for study in STUDIES:
        assert study.sweep in files, study.sweep
        path = ROOT / "sweeps" / study.sweep
        assert load_spec(path).name == study.name
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        assert any("Measured" in line for line in header), f"{study.sweep}: header states no measurement"
    assert {c.key for c in CLAIMS} == {k for s in STUDIES for k in s.claims}
