"""Tensor-resident data modules (one per ``conf/data`` option)."""

from lossland.data.base import TensorBatches, TensorDataModule
from lossland.data.embedded import Digits, MNIST5k
from lossland.data.files import CIFAR10, MNIST
from lossland.data.synthetic import Gaussians, Spheres

__all__ = ["TensorDataModule", "TensorBatches", "MNIST5k", "Digits", "Spheres", "Gaussians", "MNIST", "CIFAR10"]
