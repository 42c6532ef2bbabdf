"""Image datasets: the IDX reader against files it writes itself and against the real Fashion-MNIST files,
scikit-learn's digits, preprocessing, subsets and the MI sample."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from ibjax.data import DataError, load_task
from ibjax.data.idx import FILES, load_idx_folder, read_idx, write_idx
from ibjax.data.sample import stratified_subset
from ibjax.spec import DataSpec

FASHION = Path("/usr/share/datasets/fashion-mnist")
# .ci/run installs Debian's dataset-fashion-mnist and sets this: there the real files must be tested, not skipped.
REQUIRE_FASHION = os.environ.get("IBJAX_REQUIRE_FASHION_MNIST") == "1"
needs_fashion = pytest.mark.skipif(not FASHION.is_dir() and not REQUIRE_FASHION,
                                   reason="Fashion-MNIST not installed (apt install dataset-fashion-mnist)")


def fake_idx_folder(folder: Path, n_train=60, n_test=20, side=6, gz=True, seed=0) -> dict:
    """An IDX folder of random images and labels (10 classes); returns what was written."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images = rng.integers(0, 256, size=(n, side, side), dtype=np.uint8)
        labels = np.arange(n, dtype=np.uint8) % 10
        write_idx(folder / (FILES[split, "images"] + (".gz" if gz else "")), images)
        write_idx(folder / (FILES[split, "labels"] + (".gz" if gz else "")), labels)
        written[split] = (images, labels)
    return written


@pytest.mark.parametrize("dtype", ["u1", "i1", ">i2", ">i4", ">f4", ">f8"])
@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_idx_round_trip(tmp_path, dtype, suffix):
    a = (np.arange(2 * 3 * 4) - 7).astype(np.dtype(dtype).newbyteorder("=")).reshape(2, 3, 4)
    if dtype == "u1":
        a = np.abs(a).astype(np.uint8)
    write_idx(tmp_path / f"a{suffix}", a)
    b = read_idx(tmp_path / f"a{suffix}")
    assert b.dtype == a.dtype and b.shape == a.shape and np.array_equal(a, b)


def test_idx_header_is_the_published_format(tmp_path):
    """Magic 00 00 08 03, then big-endian sizes, then the bytes: as the MNIST page describes the format."""
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a", a)
    raw = (tmp_path / "a").read_bytes()
    assert raw[:4] == bytes([0, 0, 8, 3])
    assert raw[4:16] == b"\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00\x04" and raw[16:] == a.tobytes()


def test_folder_reader_gives_back_what_was_written(tmp_path):
    for gz in (True, False):
        written = fake_idx_folder(tmp_path / str(gz), gz=gz)
        parts = load_idx_folder(tmp_path / str(gz))
        for split in ("train", "test"):
            assert np.array_equal(parts[split][0], written[split][0])
            assert np.array_equal(parts[split][1], written[split][1]) and parts[split][1].dtype == np.int32


@pytest.mark.parametrize("damage, expected", [
    (lambda raw: raw[:-5], "truncated"),
    (lambda raw: raw + b"\x00", "trailing bytes"),
    (lambda raw: b"\x12\x34" + raw[2:], "not an IDX file"),
    (lambda raw: raw[:6], "truncated IDX header"),
    (lambda raw: b"", "an empty file"),
])
def test_damaged_idx_files_name_the_file_and_what_was_expected(tmp_path, damage, expected):
    fake_idx_folder(tmp_path, gz=False)
    target = tmp_path / FILES["train", "images"]
    target.write_bytes(damage(target.read_bytes()))
    with pytest.raises(DataError, match=expected) as e:
        load_idx_folder(tmp_path)
    assert str(target) in str(e.value)


def test_corrupt_gzip_and_missing_files(tmp_path):
    fake_idx_folder(tmp_path)
    gz = tmp_path / (FILES["test", "labels"] + ".gz")
    gz.write_bytes(gz.read_bytes()[:15])  # cut inside the compressed stream
    with pytest.raises(DataError, match="cannot read the file") as e:
        load_idx_folder(tmp_path)
    assert str(gz) in str(e.value)
    gz.unlink()
    with pytest.raises(DataError, match="missing t10k-labels-idx1-ubyte"):
        load_idx_folder(tmp_path)
    with pytest.raises(DataError, match="folder not found"):
        load_idx_folder(tmp_path / "nowhere")


def test_labels_must_match_the_images(tmp_path):
    fake_idx_folder(tmp_path, gz=False)
    write_idx(tmp_path / FILES["train", "labels"], np.zeros(7, np.uint8))
    with pytest.raises(DataError, match="one label per image"):
        load_idx_folder(tmp_path)


def test_idx_task_subsets_preprocessing_and_mi_sample(tmp_path):
    written = fake_idx_folder(tmp_path, n_train=200, n_test=50)
    spec = DataSpec(dataset="idx", path=str(tmp_path), train_rows=100, test_rows=30, mi_sample={"n": 40, "seed": 3})
    task = load_task(spec)
    assert task.split_kind == "official" and spec.train_fraction == 1.0
    assert len(task.train_idx) == 100 and len(task.test_idx) == 30 and task.x.dtype == np.uint8
    assert task.image_shape == (6, 6) and task.x.shape == (130, 36)
    # Stratified subsets: 10 classes of 20 training images each -> 10 of each; the rows are the file's own.
    assert np.bincount(task.y[task.train_idx]).tolist() == [10] * 10
    src = task.source_index
    assert np.array_equal(task.x[task.train_idx], written["train"][0][src[task.train_idx]].reshape(100, -1))
    assert np.array_equal(task.x[task.test_idx], written["test"][0][src[task.test_idx]].reshape(30, -1))
    # unit: [0, 255] -> [0, 1]
    assert np.allclose(task.x_float(), task.x / 255.0)
    # the MI sample: 40 rows stratified by class, the same on every load, recorded with its source rows
    assert len(task.mi_idx) == 40 and np.bincount(task.y[task.mi_idx]).tolist() == [4] * 10
    assert np.array_equal(load_task(spec).mi_idx, task.mi_idx)
    table = task.mi_sample_table()
    assert len(table) == 40 and set(table.source_split) <= {"train", "test"}
    assert np.array_equal(table.label, task.y[task.mi_idx])
    std = load_task(spec.model_copy(update={"preprocess": "standardize"}))
    xs = std.x_float(std.train_idx)
    assert np.allclose(xs.mean(0), 0, atol=1e-5) and np.allclose(xs.std(0), 1, atol=1e-4)


def test_large_image_sets_stay_uint8_on_the_device(tmp_path, monkeypatch):
    import ibjax.data.task as task_mod

    fake_idx_folder(tmp_path, n_train=60, n_test=20)
    task = load_task(DataSpec(dataset="idx", path=str(tmp_path)))
    assert task.device_data().x.dtype == np.float32  # small: preprocessed once on the host
    monkeypatch.setattr(task_mod, "FLOAT_X_MAX_BYTES", 1000)
    data = task.device_data()
    assert data.x.dtype == np.uint8 and data.x.shape == task.x.shape  # stored once, 1 byte per pixel
    from ibjax.train.rows import read_rows

    assert np.allclose(np.asarray(read_rows(data, None)), task.x_float(), atol=1e-7)


def test_bad_subset_and_mi_sample_sizes_name_the_key(tmp_path):
    fake_idx_folder(tmp_path, n_train=60, n_test=20)
    with pytest.raises(DataError, match=r"data.train_rows: 100 is more than the 60 training rows"):
        load_task(DataSpec(dataset="idx", path=str(tmp_path), train_rows=100))
    with pytest.raises(DataError, match=r"data.mi_sample.n: 500 rows asked for.*has 80"):
        load_task(DataSpec(dataset="idx", path=str(tmp_path), mi_sample={"n": 500}))


def test_stratified_subset_keeps_class_shares_and_is_deterministic():
    y = np.repeat(np.arange(3), [50, 30, 20])
    rows = stratified_subset(np.arange(100), y, 10, seed=1)
    assert np.bincount(y[rows]).tolist() == [5, 3, 2]
    assert np.array_equal(rows, stratified_subset(np.arange(100), y, 10, seed=1))
    assert not np.array_equal(rows, stratified_subset(np.arange(100), y, 10, seed=2))


def test_digits():
    task = load_task(DataSpec(dataset="digits"))
    assert task.x.shape == (1797, 64) and task.n_classes == 10 and task.image_shape == (8, 8)
    assert task.x.max() == 16 and np.allclose(task.x_float().max(), 1.0)
    counts = np.bincount(task.y)
    assert np.bincount(task.y[task.train_idx]).tolist() == [round(0.85 * c) for c in counts]  # stratified
    assert len(np.intersect1d(task.train_idx, task.test_idx)) == 0 and len(task.train_idx) + len(task.test_idx) == 1797


@needs_fashion
def test_real_fashion_mnist_files():
    """Debian's Fashion-MNIST: 60 000 + 10 000 images of 28 x 28, 6 000 / 1 000 per class (the published
    counts), read from its own (re-gzipped) files."""
    parts = load_idx_folder(FASHION)
    (xtr, ytr), (xte, yte) = parts["train"], parts["test"]
    assert xtr.shape == (60000, 28, 28) and xte.shape == (10000, 28, 28) and xtr.dtype == np.uint8
    assert np.bincount(ytr).tolist() == [6000] * 10 and np.bincount(yte).tolist() == [1000] * 10
    assert xtr.max() == 255 and xtr.min() == 0
    # what the reader gives is exactly the bytes after the header
    with gzip.open(FASHION / "t10k-labels-idx1-ubyte.gz") as f:
        assert np.array_equal(np.frombuffer(f.read()[8:], np.uint8), yte)
    task = load_task(DataSpec(dataset="idx", path=str(FASHION), train_rows=1000, test_rows=500,
                              mi_sample={"n": 300}))
    assert task.x.shape == (1500, 784) and len(task.mi_idx) == 300
    assert np.bincount(task.y[task.train_idx]).tolist() == [100] * 10
