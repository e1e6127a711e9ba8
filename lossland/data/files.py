"""Readers for data sets on local disk in their standard formats (nothing is downloaded)."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

from lossland.data.base import TensorDataModule
from lossland.errors import DataError

MNIST_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
               "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed): magic 0x0000 + dtype code + ndim, big-endian dims."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
            if zero != 0 or dtype != 0x08:
                raise ValueError("not an unsigned-byte IDX file")
            shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
            data = np.frombuffer(f.read(), dtype=np.uint8)
        return data.reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as e:
        raise DataError(f"cannot read IDX file {path}: {e}") from None


def _require_root(root, name: str, what: str) -> Path:
    if root is None:
        raise DataError(f"data={name} needs data.root=<directory holding {what}>")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"data.root={root} is not a directory; put {what} there")
    return root


class MNIST(TensorDataModule):
    """Full MNIST from the four IDX files (``.gz`` or not) under ``root``."""

    name = "mnist"

    def __init__(self, root: str | None = None, **kw):
        super().__init__(**kw)
        self.root = root

    def load(self):
        what = "the MNIST IDX files " + ", ".join(f for pair in MNIST_FILES.values() for f in pair)
        root = _require_root(self.root, self.name, what)
        out = {}
        for split, (img, lab) in MNIST_FILES.items():
            paths = []
            for stem in (img, lab):
                found = [p for p in (root / stem, root / f"{stem}.gz") if p.exists()]
                if not found:
                    raise DataError(f"missing {stem}[.gz] in data.root={root}; put {what} there")
                paths.append(found[0])
            x, y = read_idx(paths[0]), read_idx(paths[1])
            if len(x) != len(y):
                raise DataError(f"{paths[0]} has {len(x)} images but {paths[1]} has {len(y)} labels")
            out[split] = (x.reshape(-1, 1, 28, 28), y)
        return out


class CIFAR10(TensorDataModule):
    """CIFAR-10 "python version": ``data_batch_1..5`` and ``test_batch`` under ``root`` or
    ``root/cifar-10-batches-py``."""

    name = "cifar10"

    def __init__(self, root: str | None = None, **kw):
        super().__init__(**kw)
        self.root = root

    @staticmethod
    def _read_batch(path: Path):
        try:
            with open(path, "rb") as f:
                d = pickle.load(f, encoding="bytes")
            x = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            return x, np.asarray(d[b"labels"])
        except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError) as e:
            raise DataError(f"cannot read CIFAR-10 batch {path}: {e!r}") from None

    def load(self):
        what = "the CIFAR-10 python batches data_batch_1..5 and test_batch"
        root = _require_root(self.root, self.name, what)
        if (root / "cifar-10-batches-py").is_dir():
            root = root / "cifar-10-batches-py"
        names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
        missing = [n for n in names if not (root / n).exists()]
        if missing:
            raise DataError(f"missing {', '.join(missing)} in data.root={root}; put {what} there")
        train = [self._read_batch(root / n) for n in names[:5]]
        return {"train": (np.concatenate([t[0] for t in train]), np.concatenate([t[1] for t in train])),
                "test": self._read_batch(root / "test_batch")}
