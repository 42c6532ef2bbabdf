"""TFDS through `data_source` (no TensorFlow, no network): a tiny dataset prepared here as array_record files,
and the errors for a dataset that is absent, unknown, or asked for a split it lacks."""

from __future__ import annotations

import numpy as np
import pytest

from ibjax.data import DataError, load_task
from ibjax.spec import DataSpec

tfds = pytest.importorskip("tensorflow_datasets")


class IbjaxTinyImages(tfds.core.GeneratorBasedBuilder):
    """30 training and 12 test images of 8 x 8 (uint8 tensors: PNG-encoded Image features need TensorFlow)."""

    VERSION = tfds.core.Version("1.0.0")

    def _info(self):
        return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
            "label": tfds.features.ClassLabel(num_classes=3)}))

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(30, 0), "test": self._generate_examples(12, 1)}

    def _generate_examples(self, n, seed):
        for i in range(n):
            yield i, {"image": self.image(seed, i), "label": i % 3}

    @staticmethod
    def image(seed: int, i: int) -> np.ndarray:
        return np.random.default_rng([seed, i]).integers(0, 256, (8, 8, 1), dtype=np.uint8)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    IbjaxTinyImages(data_dir=str(d), file_format="array_record").download_and_prepare()
    return d


def test_a_prepared_dataset_is_read_through_data_source(data_dir):
    task = load_task(DataSpec(dataset="tfds", name="ibjax_tiny_images", data_dir=str(data_dir)))
    assert task.split_kind == "official" and task.image_shape == (8, 8, 1) and task.x.shape == (42, 64)
    assert len(task.train_idx) == 30 and len(task.test_idx) == 12 and task.n_classes == 3
    # TFDS stores examples in its own (shuffled) order: every generated image is there once, with its label
    for split, seed, rows in (("train", 0, task.train_idx), ("test", 1, task.test_idx)):
        made = {IbjaxTinyImages.image(seed, i).tobytes(): i % 3 for i in range(len(rows))}
        read = {task.x[r].tobytes(): task.y[r] for r in rows}
        assert read == made and set(task.source_split[rows]) == {split}


def test_an_unprepared_dataset_says_what_to_run(tmp_path):
    with pytest.raises(DataError, match="'mnist' is not prepared in") as e:
        load_task(DataSpec(dataset="tfds", name="mnist", data_dir=str(tmp_path)))
    assert "download_and_prepare" in str(e.value) and "data.download: true" in str(e.value)


def test_an_unknown_name_and_split(data_dir):
    with pytest.raises(DataError, match="TFDS has no dataset 'no_such_dataset_xyz'"):
        load_task(DataSpec(dataset="tfds", name="no_such_dataset_xyz", data_dir=str(data_dir)))
    with pytest.raises(DataError, match="data.test_split: .* has no split 'validation'; it has test, train"):
        load_task(DataSpec(dataset="tfds", name="ibjax_tiny_images", data_dir=str(data_dir),
                           test_split="validation"))
