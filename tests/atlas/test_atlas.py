"""The atlas: evidence rules on sweeps with a known answer, the claims table, and `python -m ibjax.atlas` on a
real run directory (with the library's studies that were not given named as missing)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ibjax.atlas import CLAIMS, STUDIES, StudyRun, claim_table, compression_factors, study_evidence, verdict_of
from ibjax.report.intervals import wilson_interval
from ibjax.report.verdicts import run_verdicts
from ibjax.spec import load_spec
from tests.helpers import ROOT, run_cli

EPOCHS = np.unique(np.r_[0, np.round(np.logspace(0, np.log10(4000), 150))]).astype(int)
LOG_E = np.log10(EPOCHS + 1.0)
N = 4096


def fitting_i_ty() -> np.ndarray:
    return 0.95 / (1 + np.exp(-(LOG_E - np.log10(30.0)) * 8))


def known_study(n_seeds: int = 12) -> StudyRun:
    """tanh compresses late, relu only rises, whatever the batch size (full-batch GD compresses as SGD does); in
    every run the information about irrelevant inputs falls and that about relevant inputs does not."""
    runs, info = [], []
    rng = np.random.default_rng(0)
    late = np.clip((LOG_E - 2.6) / 1.0, 0, 1)
    rise = 6 + 0.5 * np.tanh(LOG_E - 1.5)
    for act in ("tanh", "relu"):
        for batch in ("256", "full"):
            cell = f"activation={act},batch={batch}"
            for seed in range(n_seeds):
                rid = f"{act}-{batch}-{seed}"
                runs.append({"run_id": rid, "cell": cell, "seed": seed, "activation": act, "batch_size": batch,
                             "train_acc": 1.0, "test_acc": 0.9 - 0.01 * seed, "diverged": False})
                i_xt = rise - (2.0 * late if act == "tanh" else -0.5 * late) + rng.normal(0, 0.02, len(EPOCHS))
                info.append(pd.DataFrame({
                    "run_id": rid, "epoch": EPOCHS, "layer": "h1", "estimator": "binning30", "i_xt": i_xt,
                    "i_ty": fitting_i_ty(), "i_xt_rel": rise + 0.5 * late, "i_xt_irr": 2.5 - 1.5 * late}))
    runs, info = pd.DataFrame(runs), pd.concat(info, ignore_index=True)
    return StudyRun("known", Path("known"), runs, info, {}, run_verdicts(info, runs, N), N)


@pytest.fixture(scope="module")
def known():
    study = known_study()
    return study, study_evidence(study)


def test_fit_then_compress_rows_are_the_fractions_with_wilson_intervals(known):
    _, ev = known
    rows = ev[(ev.claim == "fit_then_compress")].set_index("cell")
    tanh, relu = rows.loc["activation=tanh,batch=256"], rows.loc["activation=relu,batch=256"]
    assert (tanh.value, tanh.n, tanh.evidence) == (1.0, 12, "supports")
    assert (tanh.lo, tanh.hi) == pytest.approx(wilson_interval(12, 12))
    assert (relu.value, relu.evidence) == (0.0, "contradicts")
    # rho = (I_max - I_end) / I_max: ~2 bits of ~6.5 for tanh, 0 for a trajectory that ends at its maximum
    assert tanh.rho_lo <= tanh.rho_mean <= tanh.rho_hi and 0.2 < tanh.rho_mean < 0.4
    assert relu.rho_mean == pytest.approx(0, abs=0.02)


def test_paired_claims_read_the_settings(known):
    _, ev = known
    sat = ev[ev.claim == "saturating_only"]
    assert len(sat) == 2 and (sat.value == 1.0).all() and (sat.evidence == "supports").all()
    assert set(sat.contrast) == {"tanh - relu"}
    sgd = ev[ev.claim == "sgd_noise"].set_index("contrast")
    assert set(sgd.index) == {"batch 256 - full"}
    # Full-batch GD compresses (tanh: 12/12) as often as SGD: the SGD-noise claim is contradicted there; relu
    # compresses in neither: inconclusive.
    assert sorted(ev[ev.claim == "sgd_noise"].evidence) == ["contradicts", "inconclusive"]
    irr = ev[ev.claim == "irrelevant_compressed"]
    frac = irr[irr.measure == "difference in fraction compressed"]
    assert len(frac) == 4 and (frac.value == 1.0).all() and (frac.evidence == "supports").all()
    # The whole-trajectory compression factor (I_max - mean of the last 10 % of logged epochs) / I_max: irr falls
    # from 2.5 bits, rel rises to its maximum at the last epoch (rho near 0).
    late = np.clip((LOG_E - 2.6) / 1.0, 0, 1)
    final = int(np.ceil(0.1 * len(EPOCHS)))
    rho_of = lambda v: (v.max() - v[-final:].mean()) / v.max()
    expected = rho_of(2.5 - 1.5 * late) - rho_of(6 + 0.5 * np.tanh(LOG_E - 1.5) + 0.5 * late)
    rho = irr[irr.measure == "difference in compression factor rho"]
    assert len(rho) == 4 and np.allclose(rho.value, expected) and (rho.evidence == "supports").all()


def test_saturated_trajectories_are_excluded_not_counted():
    study = known_study(6)
    study.info["i_xt"] = np.log2(N)  # every trajectory at the ceiling: nothing can show compression
    study.verdicts = run_verdicts(study.info, study.runs, N)
    ev = study_evidence(study)
    assert (ev[ev.claim == "fit_then_compress"].evidence == "excluded").all()
    assert (ev[ev.claim == "fit_then_compress"].n_excluded == 6).all()
    assert ev[ev.claim == "saturating_only"].empty  # no measured pair left


def test_claim_verdicts_agreement_flips_and_missing_studies(known):
    _, ev = known
    table = claim_table(ev, ["known"]).set_index("claim")
    assert table.loc["saturating_only", "verdict"] == "supported"
    assert table.loc["irrelevant_compressed", "verdict"] == "supported"
    assert table.loc["fit_then_compress", "verdict"] == "mixed"  # tanh yes, relu no: 2 support, 2 contradict
    assert table.loc["sgd_noise", "verdict"] == "contradicted"
    assert "saxe_activations" in table.loc["saturating_only", "missing_studies"]
    # A second estimator that disagrees is named where the verdict flips.
    other = ev[ev.claim == "saturating_only"].assign(estimator="kde_upper", evidence="contradicts")
    t2 = claim_table(pd.concat([ev, other, other]), ["known"]).set_index("claim").loc["saturating_only"]
    assert t2.verdict == "mixed" and "estimator kde_upper (contradicted)" in t2.flips
    assert t2.estimators_agreeing == "0/2"
    assert verdict_of(pd.Series(["inconclusive"])) == "no decisive evidence"


def test_compression_factor_is_nothnagel_geiger_rho():
    info = pd.DataFrame({"run_id": "r", "layer": "h1", "estimator": "b", "epoch": np.arange(20),
                         "i_xt": np.r_[np.linspace(1, 5, 10), np.full(10, 4.0)]})
    rho = compression_factors(info).rho.iat[0]
    assert rho == pytest.approx((5 - 4) / 5)


def test_every_study_of_the_library_is_a_valid_sweep_with_its_header():
    files = {p.name for p in (ROOT / "sweeps").glob("*.yaml")}
    for study in STUDIES:
        assert study.sweep in files, study.sweep
        path = ROOT / "sweeps" / study.sweep
        assert load_spec(path).name == study.name
        header = [line for line in path.read_text().splitlines() if line.startswith("#")]
        assert any("Measured" in line for line in header), f"{study.sweep}: header states no measurement"
        assert not any("filled from the CPU default run" in line for line in header), \
            f"{study.sweep}: header still waits for its measured numbers"
    assert {c.key for c in CLAIMS} == {k for s in STUDIES for k in s.claims}


def test_atlas_cli_on_a_real_run_directory(tiny_run, tmp_path):
    out = tmp_path / "atlas"
    proc = run_cli("ibjax.atlas", str(tiny_run), "--out", str(out), "--n-boot", "200")
    assert proc.returncode == 0, proc.stderr
    text = (out / "ATLAS.md").read_text()
    assert "## Claims" in text and "Studies not given" in text and "saxe_activations" in text
    claims = pd.read_csv(out / "claims.csv")
    assert list(claims.claim) == [c.key for c in CLAIMS]
    ev = pd.read_csv(out / "evidence.csv")
    assert set(ev.claim) >= {"fit_then_compress", "saturating_only"} and (ev.study == "tiny").all()
    assert (out / "figures" / "fit_then_compress.png").stat().st_size > 0


def test_atlas_cli_names_a_bad_run_directory(tiny_run, tmp_path):
    proc = run_cli("ibjax.atlas", str(tiny_run), str(tmp_path / "nowhere"), "--out", str(tmp_path / "a"))
    assert proc.returncode == 2 and "nowhere" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("ibjax.atlas", str(tiny_run), str(tiny_run), "--out", str(tmp_path / "a"))
    assert proc.returncode == 2 and "given twice" in proc.stderr


def test_random_label_networks_that_compress_as_often_contradict_compression_generalizes():
    runs, info = [], []
    late = np.clip((LOG_E - 2.6) / 1.0, 0, 1)
    for noise in (0.0, 1.0):
        for seed in range(8):
            rid = f"p{noise}-{seed}"
            runs.append({"run_id": rid, "cell": f"label_noise={noise:g}", "seed": seed, "label_noise": noise,
                         "train_acc": 1.0, "test_acc": 0.9 if noise == 0 else 0.1, "diverged": False})
            info.append(pd.DataFrame({"run_id": rid, "epoch": EPOCHS, "layer": "out", "estimator": "binning30",
                                      "i_xt": 6 + 0.5 * np.tanh(LOG_E - 1.5) - 2.0 * late, "i_ty": fitting_i_ty()}))
    runs, info = pd.DataFrame(runs), pd.concat(info, ignore_index=True)
    study = StudyRun("labels", Path("labels"), runs, info, {}, run_verdicts(info, runs, N), N)
    ev = study_evidence(study)
    row = ev[(ev.claim == "compression_generalizes") & (ev.measure == "difference in fraction compressed")].iloc[0]
    assert (row.contrast, row.value, row.evidence) == ("label_noise 0 - 1", 0.0, "contradicts")
