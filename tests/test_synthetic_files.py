"""lossland.data.synthetic_files writes CIFAR-10 and MNIST in their exact on-disk formats, which lossland's
readers (and any other reader of those formats) take as the real thing."""

import gzip
import pickle
import struct

import numpy as np

from lossland.data import CIFAR10, MNIST
from lossland.data.synthetic_files import MNIST_COUNTS, write_cifar10, write_mnist


def test_cifar10_python_batches(tmp_path):
    folder = write_cifar10(tmp_path, train=500, test=100)
    assert folder.name == "cifar-10-batches-py"
    assert sorted(p.name for p in folder.iterdir()) == ["batches.meta", *[f"data_batch_{i}" for i in range(1, 6)],
                                                        "test_batch"]
    with open(folder / "data_batch_3", "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    assert set(batch) == {b"batch_label", b"labels", b"data", b"filenames"}
    assert batch[b"data"].dtype == np.uint8 and batch[b"data"].shape == (100, 3072)
    assert isinstance(batch[b"labels"], list) and len(batch[b"filenames"]) == 100
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="bytes")[b"label_names"][0] == b"airplane"
    dm = CIFAR10(root=str(tmp_path), normalize="none").prepare()
    assert dm.splits["train"][0].shape == (500, 3, 32, 32) and dm.splits["test"][0].shape == (100, 3, 32, 32)
    assert np.bincount(dm.splits["train"][1].numpy()).tolist() == [50] * 10  # balanced, as CIFAR-10


def test_mnist_idx_files_with_the_real_class_counts(tmp_path):
    write_mnist(tmp_path, train=6000, test=1000, compress=True)
    with gzip.open(tmp_path / "train-images-idx3-ubyte.gz") as f:
        assert struct.unpack(">IIII", f.read(16)) == (2051, 6000, 28, 28)
    with gzip.open(tmp_path / "t10k-labels-idx1-ubyte.gz") as f:
        assert struct.unpack(">II", f.read(8)) == (2049, 1000)
    dm = MNIST(root=str(tmp_path), normalize="none").prepare()
    counts = np.bincount(dm.splits["train"][1].numpy())
    assert counts.sum() == 6000 and counts[1] > counts[5]                     # ones are the most frequent digit
    assert np.allclose(counts / 6000, np.array(MNIST_COUNTS["train"]) / 60000, atol=1e-3)
    assert dm.splits["test"][0].shape == (1000, 1, 28, 28)
    sub = MNIST(root=str(tmp_path), classes=[1, 7], normalize="none").prepare()
    assert len(sub.splits["train"][1]) == counts[1] + counts[7]
