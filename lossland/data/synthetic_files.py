"""Synthetic stand-ins for the on-disk data sets, written in their exact standard formats and real sizes.

What the full-scale experiments read (``data=cifar10`` / ``data=mnist`` with ``data.root=...``) cannot be
downloaded here, so tests that must go through the readers at the papers' scale write these instead:

- :func:`write_cifar10` — CIFAR-10 "python version": ``cifar-10-batches-py/data_batch_1..5`` (10,000 images
  each) and ``test_batch`` (10,000), pickled dicts with byte-string keys ``batch_label``, ``labels`` (list of
  ints), ``data`` (uint8, N × 3072, channel-major rows of 32 × 32), ``filenames``; and ``batches.meta``
  (``label_names``, ``num_cases_per_batch``, ``num_vis``), as in the archive from the dataset's page;
- :func:`write_mnist` — MNIST's four IDX files (``train-images-idx3-ubyte`` 60,000 × 28 × 28,
  ``train-labels-idx1-ubyte``, ``t10k-*`` 10,000): big-endian header (magic 2051 / 2049, then the dimensions)
  followed by unsigned bytes; optionally gzip-compressed, as distributed.

Labels come in the real sets' class counts (CIFAR-10: balanced; MNIST: 5,923 zeros ... 5,949 nines in the training
set, 980 ... 1,009 in the test set — so class subsets such as 1 vs 7 have their real sizes), in a shuffled order,
and each class brightens its own patch of the image, so a network can learn something; the pixels are otherwise
noise. Nothing here is real data: use it to check code paths and sizes, never results.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

CIFAR_LABELS = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR_TRAIN, CIFAR_TEST, CIFAR_PER_BATCH = 50_000, 10_000, 10_000
MNIST_TRAIN, MNIST_TEST = 60_000, 10_000
# images per digit in MNIST's training and test files (the data set's published counts)
MNIST_COUNTS = {"train": (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949),
                "t10k": (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)}


def _labels(n: int, classes: int, rng: np.random.Generator, counts=None) -> np.ndarray:
    """``n`` labels: in proportion to ``counts`` (exactly them at their total), else balanced; shuffled."""
    if counts is None:
        return rng.permutation(np.arange(n) % classes).astype(np.int64)
    per = np.floor(np.asarray(counts) * n / sum(counts)).astype(int)
    per[: n - per.sum()] += 1  # the remainder, one each to the first classes
    return rng.permutation(np.repeat(np.arange(classes), per)).astype(np.int64)


def _images(labels: np.ndarray, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """uint8 noise in [0, 160) with a bright patch (+80) at a class-dependent place of the last two axes."""
    x = rng.integers(0, 160, size=(len(labels), *shape), dtype=np.uint8)
    h, w = shape[-2:]
    ph, pw = h // 4, w // 4
    for c in np.unique(labels):
        r, q = divmod(int(c) % 16, 4)
        idx = np.flatnonzero(labels == c)
        x[idx, ..., r * ph:(r + 1) * ph, q * pw:(q + 1) * pw] += 80
    return x


def write_cifar10(root: str | Path, train: int = CIFAR_TRAIN, test: int = CIFAR_TEST, seed: int = 0) -> Path:
    """Write ``<root>/cifar-10-batches-py/`` (five training batches of ``train / 5`` images, one test batch of
    ``test``, ``batches.meta``); returns that folder. ``train`` must divide by 5."""
    if train % 5 or train <= 0 or test <= 0:
        raise ValueError(f"train={train} must be a positive multiple of 5 and test={test} positive")
    out = Path(root) / "cifar-10-batches-py"
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    per = train // 5
    batches = [(f"data_batch_{i}", f"training batch {i} of 5", per) for i in range(1, 6)]
    batches.append(("test_batch", "testing batch 1 of 1", test))
    for name, label, n in batches:
        y = _labels(n, 10, rng)
        x = _images(y, (3, 32, 32), rng).reshape(n, 3072)
        doc = {b"batch_label": label.encode(), b"labels": [int(v) for v in y], b"data": x,
               b"filenames": [f"synthetic_{name}_{i:05d}.png".encode() for i in range(n)]}
        with open(out / name, "wb") as f:
            pickle.dump(doc, f, protocol=2)
    meta = {b"label_names": [s.encode() for s in CIFAR_LABELS], b"num_cases_per_batch": per, b"num_vis": 3072}
    with open(out / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return out


def _idx(path: Path, arr: np.ndarray, compress: bool) -> None:
    magic = {1: 2049, 3: 2051}[arr.ndim]  # 0x0801 labels, 0x0803 images: unsigned bytes, ndim
    header = struct.pack(">I", magic) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()
    if compress:
        with gzip.open(path.with_name(path.name + ".gz"), "wb", compresslevel=1) as f:
            f.write(data)
    else:
        path.write_bytes(data)


def write_mnist(root: str | Path, train: int = MNIST_TRAIN, test: int = MNIST_TEST, seed: int = 0,
                compress: bool = False) -> Path:
    """Write the four MNIST IDX files into ``root`` (``.gz`` with ``compress``); returns ``root``."""
    if train <= 0 or test <= 0:
        raise ValueError(f"train={train} and test={test} must be positive")
    out = Path(root)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed + 1)
    for prefix, n in (("train", train), ("t10k", test)):
        y = _labels(n, 10, rng, MNIST_COUNTS[prefix])
        _idx(out / f"{prefix}-images-idx3-ubyte", _images(y, (28, 28), rng), compress)
        _idx(out / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8), compress)
    return out


def write_all(root: str | Path, seed: int = 0) -> Path:
    """Both data sets at their real sizes in one folder: the MNIST IDX files in ``root`` and CIFAR-10 in
    ``root/cifar-10-batches-py`` — so one ``data.root=<root>`` serves ``data=mnist`` and ``data=cifar10``."""
    write_mnist(root, seed=seed)
    write_cifar10(root, seed=seed)
    return Path(root)
