"""Tensor-resident data: the whole dataset lives in memory (on the training device) and mini-batches
are index slices of a per-epoch permutation drawn from the ``data`` RNG stream. No per-sample collation.

Subclasses implement :meth:`TensorDataModule.load` returning ``{"train": (x, y)}`` and optionally
``"test": (x, y)`` (for data with an official test split) as numpy arrays: images as (N, C, H, W),
vectors as (N, D), labels as integers. The base class applies, in order: class subset (labels remapped
to 0..K-1 in the order given), split into train/val/test (a fixed ``split_seed`` permutation), training
``fraction``, normalization (statistics of the training split) and zero-padding to ``pad_to``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
import torch

from lossland.batches import TensorBatches
from lossland.errors import DataError
from lossland.seeding import generator

NORMALIZATIONS = ("standard", "unit", "none")


def block_sizes(first_step: int, num_steps: int, max_block: int,
                next_boundary: Callable[[int], int | None]) -> list[int]:
    """Split steps ``first_step+1 .. first_step+num_steps`` into blocks of at most ``max_block`` steps,
    ending a block at every step returned by ``next_boundary(step)`` (the next due step after ``step``)."""
    sizes, step, end = [], first_step, first_step + num_steps
    while step < end:
        stop = min(step + max_block, end)
        nb = next_boundary(step)
        if nb is not None and step < nb < stop:
            stop = nb
        sizes.append(stop - step)
        step = stop
    return sizes


class TensorDataModule:
    name = "data"

    def __init__(self, batch_size: int = 128, train_size: int | None = None, val_size: int = 0,
                 test_size: int | None = None, classes: Sequence[int] | None = None, fraction: float = 1.0,
                 normalize: str = "standard", pad_to: int | None = None, split_seed: int = 0,
                 eval_batch_size: int = 1000, drop_last: bool = True, seed: int = 0,
                 eval_limit: int | None = None):
        if normalize not in NORMALIZATIONS:
            raise DataError(f"data.normalize={normalize!r} is not valid; valid: {', '.join(NORMALIZATIONS)}")
        if not 0 < fraction <= 1:
            raise DataError(f"data.fraction must lie in (0, 1], got {fraction}")
        if batch_size <= 0:
            raise DataError(f"data.batch_size must be positive, got {batch_size}")
        if eval_limit is not None and not (isinstance(eval_limit, int) and eval_limit > 0):
            raise DataError(f"data.eval_limit must be a positive integer or null, got {eval_limit!r}")
        self.eval_limit = eval_limit
        self.batch_size, self.train_size, self.val_size, self.test_size = batch_size, train_size, val_size, test_size
        self.classes = list(classes) if classes is not None else None
        self.fraction, self.normalize, self.pad_to = fraction, normalize, pad_to
        self.split_seed, self.eval_batch_size, self.drop_last, self.seed = split_seed, eval_batch_size, drop_last, seed
        self.splits: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self.num_classes = 0
        self.order_generator = generator(seed, "data")
        self.order_digest = ""  # hash chain of every epoch's permutation: equal digests = equal batch order
        self._epoch_start = (self.order_generator.get_state(), self.order_digest)

    # ----------------------------------------------------------------- loading
    def load(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        raise NotImplementedError

    def prepare(self, device: str | torch.device = "cpu") -> TensorDataModule:
        """Load, subset, split, normalize and pad once; idempotent."""
        if self.splits:
            return self
        raw = self.load()
        x, y = raw["train"]
        x, y = self._subset(x, y)
        if "test" in raw:
            xt, yt = self._subset(*raw["test"])
            pools = {"pool": (x, y), "test": (xt, yt)}
        else:
            pools = {"pool": (x, y)}
        splits = self._split(pools)
        splits = self._normalize_and_pad(splits)
        self.splits = {k: (torch.as_tensor(a, dtype=torch.float32, device=device),
                           torch.as_tensor(b, dtype=torch.long, device=device)) for k, (a, b) in splits.items()}
        return self

    def _subset(self, x: np.ndarray, y: np.ndarray):
        y = np.asarray(y).astype(np.int64)
        if self.classes is None:
            uniq = np.unique(y)
            self.num_classes = max(self.num_classes, int(uniq.max()) + 1)
            return np.asarray(x), y
        missing = sorted(set(self.classes) - set(np.unique(y).tolist()))
        if missing:
            raise DataError(f"data.classes: classes {missing} do not occur in {self.name}; "
                            f"valid: {sorted(np.unique(y).tolist())}")
        keep = np.isin(y, self.classes)
        remap = {c: i for i, c in enumerate(self.classes)}
        self.num_classes = len(self.classes)
        return np.asarray(x)[keep], np.array([remap[int(v)] for v in y[keep]], dtype=np.int64)

    def _split(self, pools):
        rng = np.random.default_rng(self.split_seed)
        x, y = pools["pool"]
        perm = rng.permutation(len(x))
        n = len(x)
        if "test" in pools:
            xt, yt = pools["test"]
            tperm = rng.permutation(len(xt))
            n_test = len(xt) if self.test_size is None else self.test_size
            test = (xt[tperm[:n_test]], yt[tperm[:n_test]])
            n_train = n - self.val_size if self.train_size is None else self.train_size
        else:
            n_test = self.test_size if self.test_size is not None else n // 5
            n_train = n - self.val_size - n_test if self.train_size is None else self.train_size
            idx = perm[n_train + self.val_size:n_train + self.val_size + n_test]
            test = (x[idx], y[idx])
        if n_train <= 0 or n_train + self.val_size + (0 if "test" in pools else n_test) > n:
            raise DataError(f"{self.name} has {n} training examples: cannot take train_size={n_train}, "
                            f"val_size={self.val_size}" + ("" if "test" in pools else f", test_size={n_test}"))
        if "test" in pools and n_test > len(pools["test"][0]):
            raise DataError(f"{self.name} has {len(pools['test'][0])} test examples, test_size={n_test}")
        tr = perm[:max(1, int(round(n_train * self.fraction)))]
        va = perm[n_train:n_train + self.val_size]
        out = {"train": (x[tr], y[tr]), "test": test}
        if self.val_size:
            out["val"] = (x[va], y[va])
        return out

    def _normalize_and_pad(self, splits):
        xtr = splits["train"][0].astype(np.float32)
        axes = (0, 2, 3) if xtr.ndim == 4 else (0,)
        if self.normalize == "standard":
            mean = xtr.mean(axis=axes, keepdims=True)
            std = xtr.std(axis=axes, keepdims=True) + 1e-8
            if xtr.ndim != 4:  # vectors: one scalar statistic, keeps geometry (e.g. spheres' radii ratio)
                mean, std = xtr.mean(), xtr.std() + 1e-8
        elif self.normalize == "unit":
            mean, std = 0.0, max(float(xtr.max()), 1e-8)
        else:
            mean, std = 0.0, 1.0
        out = {}
        for k, (a, b) in splits.items():
            # one float32 copy per split, normalized in place (at CIFAR-10's size each temporary is 600 MB)
            a = xtr if k == "train" else a.astype(np.float32)
            np.subtract(a, mean, out=a, casting="unsafe")
            np.divide(a, std, out=a, casting="unsafe")
            if self.pad_to and a.ndim == 4:
                h, w = a.shape[2:]
                if h > self.pad_to or w > self.pad_to:
                    raise DataError(f"data.pad_to={self.pad_to} is smaller than the {h}x{w} images")
                ph, pw = self.pad_to - h, self.pad_to - w
                a = np.pad(a, ((0, 0), (0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
            out[k] = (a, b)
        return out

    # ------------------------------------------------------------- properties
    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.splits["train"][0].shape[1:])

    @property
    def steps_per_epoch(self) -> int:
        n = len(self.splits["train"][0])
        if n < self.batch_size:  # every step takes a full batch: an epoch would have no step, a run no end
            raise DataError(f"{self.name}: the training split holds {n} examples (train_size={self.train_size}, "
                            f"fraction={self.fraction:g}), fewer than one batch (data.batch_size={self.batch_size})")
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def to(self, device) -> TensorDataModule:
        self.splits = {k: (a.to(device), b.to(device)) for k, (a, b) in self.splits.items()}
        return self

    def eval_batches(self, num_batches: int, split: str = "train", seed: int | None = None):
        """A fixed list of ``num_batches`` mini-batches (of ``batch_size``) drawn from the ``eval`` stream:
        the same examples at every evaluation point, so metric trajectories are comparable."""
        x, y = self.splits[split]
        g = generator(self.seed if seed is None else seed, "eval")
        perm = torch.randperm(len(x), generator=g).to(x.device)
        b = min(self.batch_size, len(x))
        k = max(1, min(num_batches, len(x) // b))
        return [(x[perm[i * b:(i + 1) * b]], y[perm[i * b:(i + 1) * b]]) for i in range(k)]

    # ------------------------------------------------------------- training order
    def epoch_order(self, replay: bool = False) -> torch.Tensor:
        """The next epoch's permutation of the training split, from the data-order stream (on the data's
        device). ``replay=True`` draws the current epoch's permutation again (resuming mid-epoch)."""
        if replay:
            state, self.order_digest = self._epoch_start
            self.order_generator.set_state(state)
        self._epoch_start = (self.order_generator.get_state(), self.order_digest)
        x = self.splits["train"][0]
        order = torch.randperm(len(x), generator=self.order_generator)
        self.order_digest = hashlib.sha1(self.order_digest.encode() + order.numpy().tobytes()).hexdigest()[:16]
        if not self.drop_last and len(x) % self.batch_size:
            raise DataError("data.drop_last=false is not supported: every step takes a full batch")
        return order.to(x.device)

    def follow(self, other: TensorDataModule) -> bool:
        """Take the epoch that ``other`` has just drawn (:meth:`epoch_order`) without drawing it again, when this
        module's data order stands where ``other``'s stood (the same split, stream state and digest: a grid's
        members of one seed): its stream and digest move on as ``other``'s did. False (nothing changed)
        otherwise."""
        start, digest = other._epoch_start
        if other.splits["train"][0] is not self.splits["train"][0] or digest != self.order_digest or \
                not torch.equal(self.order_generator.get_state(), start):
            return False
        self._epoch_start = other._epoch_start
        self.order_generator.set_state(other.order_generator.get_state())
        self.order_digest = other.order_digest
        return True

    def eval_loader(self, split: str, limit: int | None = None) -> TensorBatches:
        """The whole ``split`` (or its first ``limit`` examples) in batches of ``eval_batch_size``.
        ``data.eval_limit`` caps every such pass — the final evaluation, the convergence check, the test
        examples of the phase metrics — at the first N examples: a cheaper run for checking a pipeline at full
        size on a CPU (``lossland paper --rehearse``), never for results (the run's config records the cap)."""
        if self.eval_limit is not None:
            limit = self.eval_limit if limit is None else min(limit, self.eval_limit)
        x, y = self.splits[split]
        return TensorBatches(x[:limit], y[:limit], self.eval_batch_size)

    def state_dict(self):
        return {"order_generator": self.order_generator.get_state(), "order_digest": self.order_digest,
                "epoch_start": self._epoch_start}

    def load_state_dict(self, state):
        self.order_generator.set_state(state["order_generator"])
        self.order_digest = state.get("order_digest", "")
        self._epoch_start = state.get("epoch_start", (self.order_generator.get_state(), self.order_digest))
