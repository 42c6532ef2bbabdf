"""Prepared tensorflow-datasets datasets, read without TensorFlow through `data_source` (array_record files).

`tfds.load` needs TensorFlow; the data-source reader does not. A dataset must be *prepared* (its array_record
files and metadata in `data_dir/<name>/<version>/`): TFDS's own error for an absent dataset is misleading (it
talks of downloads or of TensorFlow), so the builder is asked first and the message says what to run. Nothing
is downloaded unless the spec says `download: true`.
"""

from __future__ import annotations

import numpy as np

from ibjax.data.matfile import DataError
from ibjax.spec import DataSpec

PREPARE_HINT = ("prepare it once on a machine with internet: python -c \"import tensorflow_datasets as tfds; "
                "tfds.builder('{name}', data_dir='{data_dir}').download_and_prepare("
                "download_config=tfds.download.DownloadConfig(file_format='array_record'))\", then copy "
                "{data_dir}/{name}/ here; or set data.download: true to let this sweep download it")


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:  # a broken install: say so, not a traceback
        raise DataError(f"dataset 'tfds' needs tensorflow-datasets (pip install -e .): {e}") from None
    return tfds


def _builder(tfds, spec: DataSpec):
    data_dir = spec.data_dir
    try:
        return tfds.builder(spec.name, data_dir=data_dir)
    except Exception as e:  # DatasetNotFoundError, or a builder whose code needs TensorFlow
        if type(e).__name__ == "DatasetNotFoundError":
            raise DataError(f"data.name: TFDS has no dataset {spec.name!r} (in its registry or prepared in "
                            f"{data_dir or '~/tensorflow_datasets'}); names are like mnist, fashion_mnist, "
                            f"kmnist, emnist/digits") from None
        raise DataError(f"data.name: TFDS cannot open dataset {spec.name!r} in {data_dir or 'its default folder'} "
                        f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None


def _features(info, name: str) -> tuple[str, str]:
    """The image and the label feature of a dataset (by kind, so `image`/`label` need not be their names)."""
    features = info.features
    # An Image feature, or a uint8 Tensor of rank 2-3 (how datasets prepared without TensorFlow store images).
    images = [k for k, f in features.items() if type(f).__name__ == "Image" or (
        type(f).__name__ == "Tensor" and str(np.dtype(f.np_dtype)) == "uint8" and len(f.shape) in (2, 3))]
    labels = [k for k, f in features.items() if type(f).__name__ == "ClassLabel"]
    if len(images) != 1 or len(labels) != 1:
        raise DataError(f"TFDS dataset {name!r}: expected one image feature and one class-label feature, found "
                        f"{', '.join(f'{k} ({type(f).__name__})' for k, f in features.items())}")
    return images[0], labels[0]


def _read_split(builder, split: str, image_key: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    source = builder.as_data_source(split=split)
    n = len(source)
    if n == 0:
        raise DataError(f"TFDS dataset {builder.name!r}: split {split!r} is empty")
    getitems = getattr(source, "__getitems__", None)
    images, labels = [], []
    block = 4096
    for start in range(0, n, block):
        keys = list(range(start, min(start + block, n)))
        items = getitems(keys) if getitems is not None else [source[k] for k in keys]
        images.extend(np.asarray(it[image_key]) for it in items)
        labels.extend(int(it[label_key]) for it in items)
    x = np.stack(images)
    if x.dtype != np.uint8:
        raise DataError(f"TFDS dataset {builder.name!r}: images are {x.dtype}, expected uint8 pixels")
    return x, np.asarray(labels, np.int32)


def load_tfds(spec: DataSpec) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """((train images, labels), (test images, labels)) of a prepared TFDS dataset; DataError otherwise."""
    tfds = _import_tfds()
    builder = _builder(tfds, spec)
    if not builder.is_prepared():
        if not spec.download:
            hint = PREPARE_HINT.format(name=spec.name, data_dir=builder.data_dir_root)
            raise DataError(f"TFDS dataset {spec.name!r} is not prepared in {builder.data_dir_root} (expected "
                            f"{builder.data_dir}); {hint}")
        try:
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(file_format="array_record"))
        except Exception as e:
            raise DataError(f"TFDS could not download and prepare {spec.name!r} into {builder.data_dir_root} "
                            f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    splits = builder.info.splits
    for key in ("train_split", "test_split"):
        split = getattr(spec, key)
        if split.split("[")[0] not in splits:
            raise DataError(f"data.{key}: TFDS dataset {spec.name!r} has no split {split!r}; it has "
                            f"{', '.join(sorted(splits))}")
    image_key, label_key = _features(builder.info, spec.name)
    return (_read_split(builder, spec.train_split, image_key, label_key),
            _read_split(builder, spec.test_split, image_key, label_key))
