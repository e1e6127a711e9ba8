"""Readers for data sets on local disk in their standard formats (nothing is downloaded)."""

from __future__ import annotations

import codecs
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


def _numpy_core():
    try:
        from numpy import _core as core  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy import core
    return core


class BatchUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR-10 python batches that admits only what the format uses (a dict of bytes, lists
    and numpy arrays, as pickled by Python 2 or 3): any other global is refused, so a crafted file cannot
    run code. The numpy names are served from this numpy (``numpy.core`` and ``numpy._core`` alike)."""

    def find_class(self, module: str, name: str):
        core = _numpy_core()
        allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                   ("_codecs", "encode"): codecs.encode}  # bytes pickled by Python 3 at protocol 2
        for prefix in ("numpy.core", "numpy._core"):
            allowed[(f"{prefix}.multiarray", "_reconstruct")] = core.multiarray._reconstruct
            allowed[(f"{prefix}.multiarray", "scalar")] = core.multiarray.scalar
            allowed[(f"{prefix}.numeric", "_frombuffer")] = core.numeric._frombuffer
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refused {module}.{name}: a CIFAR-10 batch holds only numpy arrays, "
                                         "lists and bytes (a pickle naming other objects could run code)")
        return allowed[(module, name)]


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
                d = BatchUnpickler(f, encoding="bytes").load()
        except OSError as e:
            raise DataError(f"cannot read CIFAR-10 batch {path}: {e}") from None
        except pickle.UnpicklingError as e:
            raise DataError(f"cannot read CIFAR-10 batch {path}: {e}") from None
        except Exception as e:  # truncated, random bytes, a reduce that does not fit
            raise DataError(f"cannot read CIFAR-10 batch {path}: not a CIFAR-10 python batch "
                            f"({type(e).__name__})") from None
        x, y = d.get(b"data") if isinstance(d, dict) else None, d.get(b"labels") if isinstance(d, dict) else None
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3 * 32 * 32:
            raise DataError(f"cannot read CIFAR-10 batch {path}: no b'data' array of uint8 rows of 3072 pixels")
        try:
            y = np.asarray(y, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            y = None
        if y is None or y.shape != (len(x),) or (y.size and (y.min() < 0 or y.max() > 9)):
            raise DataError(f"cannot read CIFAR-10 batch {path}: b'labels' is not one class 0..9 per image")
        return x.reshape(-1, 3, 32, 32), y

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
