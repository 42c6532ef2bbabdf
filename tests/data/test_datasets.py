import numpy as np
import pytest
import scipy.io

from ibjax.data import all_patterns, idnns_split, make_split, stratified_split, tishby12
from tests.helpers import SHARED

# The original IDNNs data files live beside the repository for its developers (and CI), never inside it: a
# user's clone alone skips the two checks against them, with this reason.
needs_original = pytest.mark.skipif(not (SHARED / "data" / "var_u.mat").is_file(),
                                    reason=f"the original IDNNs data files are not in {SHARED / 'data'}")


@needs_original
def test_tishby12_equals_original_file():
    x, y = tishby12()
    mat = scipy.io.loadmat(SHARED / "data" / "var_u.mat")
    assert x.dtype == np.uint8 and x.shape == (4096, 12)
    assert y.shape == (4096,)
    np.testing.assert_array_equal(x, mat["F"])
    np.testing.assert_array_equal(y, mat["y"].ravel())
    assert y.sum() == 2118


def test_patterns_are_binary_of_row_index_msb_first():
    x = all_patterns(12)
    weights = 2 ** np.arange(11, -1, -1)
    np.testing.assert_array_equal(x.astype(int) @ weights, np.arange(4096))


@pytest.mark.parametrize("frac", [0.5, 0.85])
def test_stratified_split_is_seeded_disjoint_and_balanced(frac):
    _, y = tishby12()
    tr, te = stratified_split(y, frac, seed=3)
    tr2, _ = stratified_split(y, frac, seed=3)
    tr3, _ = stratified_split(y, frac, seed=4)
    np.testing.assert_array_equal(tr, tr2)
    assert not np.array_equal(tr, tr3)
    assert np.intersect1d(tr, te).size == 0 and tr.size + te.size == 4096
    assert abs(y[tr].mean() - y.mean()) < 1e-3 and abs(y[te].mean() - y.mean()) < 3e-3
    assert abs(tr.size / 4096 - frac) < 1e-3


def test_idnns_split_takes_first_rows_unshuffled():
    _, y = tishby12()
    tr, te = make_split(y, "idnns", 0.8, seed=0)
    np.testing.assert_array_equal(tr, np.arange(3277))
    np.testing.assert_array_equal(te, np.arange(3277, 4096))
    # docs/reference.md, section 2: train 43.7 % positive, test 83.6 % -- the bias that makes it only an option.
    assert round(y[tr].mean(), 3) == 0.437 and round(y[te].mean(), 3) == 0.836
    assert idnns_split(10, 0.5)[0].tolist() == [0, 1, 2, 3, 4]


@needs_original
def test_mat_dataset_loads_with_its_split(tmp_path):
    from ibjax.data import load_task
    from ibjax.spec import DataSpec

    task = load_task(DataSpec(dataset="mat", path=str(SHARED / "data" / "g1.mat")))
    assert task.x.shape == (4096, 12) and task.y.sum() == 2063 and task.n_classes == 2
    with pytest.raises(FileNotFoundError, match="no_such.mat"):
        load_task(DataSpec(dataset="mat", path=str(tmp_path / "no_such.mat")))


def test_the_spec_and_the_loaders_name_the_same_datasets():
    import typing

    from ibjax.data.task import DATASETS
    from ibjax.spec import DataSpec

    assert set(typing.get_args(DataSpec.model_fields["dataset"].annotation)) == set(DATASETS)
