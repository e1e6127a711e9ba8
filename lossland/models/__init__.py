"""Architectures: plain ``nn.Module`` s built from ``input_shape`` (C, H, W) or (D,) and ``num_outputs``."""

from lossland.models.cnn_prelu import CNNPReLU
from lossland.models.convnet_si import ConvNetSI
from lossland.models.darts import GenotypeNet
from lossland.models.exp_neuron import ExpNeuron
from lossland.models.mlp import MLP
from lossland.models.shallow_conv import ShallowConv
from lossland.models.vgg import VGG16BN

__all__ = ["MLP", "ConvNetSI", "CNNPReLU", "VGG16BN", "GenotypeNet", "ExpNeuron", "ShallowConv"]
