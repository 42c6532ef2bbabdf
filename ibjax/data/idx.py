"""MNIST-format (IDX) files: MNIST, Fashion-MNIST, KMNIST and the like, read with NumPy.

An IDX file is a 4-byte magic number (two zero bytes, a type code, the number of dimensions), one big-endian
uint32 per dimension, then the values in C order. The images are type 0x08 (uint8) with 3 dimensions
[n, rows, cols], the labels uint8 with 1 dimension. Files may be gzip-compressed (`.gz`); only the bytes are
read, never checked against a published hash (Debian's Fashion-MNIST package, for one, re-gzipped the files).

A folder holds the official split: `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`,
`t10k-images-idx3-ubyte`, `t10k-labels-idx1-ubyte` (each with or without `.gz`).
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from ibjax.data.matfile import DataError

# IDX type codes -> NumPy dtypes (big-endian where multi-byte).
IDX_TYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
             0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
FILES = {("train", "images"): "train-images-idx3-ubyte", ("train", "labels"): "train-labels-idx1-ubyte",
         ("test", "images"): "t10k-images-idx3-ubyte", ("test", "labels"): "t10k-labels-idx1-ubyte"}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:  # gzip raises BadGzipFile (an OSError) or EOFError if cut short
        raise DataError(f"{path}: cannot read the file ({type(e).__name__}: {e}); expected an IDX file"
                        f"{' compressed with gzip' if path.suffix == '.gz' else ''}") from None


def read_idx(path: str | Path) -> np.ndarray:
    """The array in one IDX file (`.gz` or not). DataError names the file and what was expected."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES or not 1 <= raw[3] <= 4:
        raise DataError(f"{path}: not an IDX file: expected the magic number 00 00 <type> <ndim> (e.g. 00 00 08 "
                        f"03 for images), got {raw[:4].hex(' ') or 'an empty file'}")
    dtype, ndim = IDX_TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} bytes; {header} expected for {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "has trailing bytes"
        raise DataError(f"{path}: {what}: the header says shape {list(shape)} of {dtype.name} ({expected:,} bytes "
                        f"in all), the file holds {len(raw):,} bytes")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="), copy=False)


def find_file(folder: Path, stem: str) -> Path:
    """`folder/stem` or `folder/stem.gz`; DataError naming both when neither exists."""
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: missing {stem} (or {stem}.gz); an IDX data folder holds "
                    f"{', '.join(FILES.values())} (each may be .gz), e.g. /usr/share/datasets/fashion-mnist/ "
                    f"from Debian's dataset-fashion-mnist package")


def load_idx_folder(folder: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{'train': (images uint8 [n, h, w], labels int32 [n]), 'test': (...)} from an IDX folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data.path: folder not found: {folder}; expected a folder of MNIST-format files "
                        f"({', '.join(FILES.values())}, each may be .gz)")
    out = {}
    for split in ("train", "test"):
        img_path, lab_path = find_file(folder, FILES[split, "images"]), find_file(folder, FILES[split, "labels"])
        images, labels = read_idx(img_path), read_idx(lab_path)
        if images.ndim not in (3, 4) or images.dtype != np.uint8:
            raise DataError(f"{img_path}: expected uint8 images [n, rows, cols] (IDX type 08, 3 dimensions), got "
                            f"{images.dtype.name} of shape {list(images.shape)}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(f"{lab_path}: expected one label per image ({len(images):,} in {img_path.name}), got "
                            f"shape {list(labels.shape)}")
        out[split] = (images, labels.astype(np.int32))
    return out


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an array as an IDX file (gzip when the name ends in .gz): for tests and for converting data."""
    path = Path(path)
    array = np.asarray(array)
    code = {v.newbyteorder("=") if v.itemsize > 1 else v: k for k, v in IDX_TYPES.items()}
    dtype = array.dtype.newbyteorder("=")
    if dtype not in code:
        raise ValueError(f"IDX has no type for {array.dtype}")
    big = array.astype(IDX_TYPES[code[dtype]], copy=False)
    raw = bytes([0, 0, code[dtype], array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape) \
        + big.tobytes()
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as f:
            f.write(raw)
    else:
        path.write_bytes(raw)
