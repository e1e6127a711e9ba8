"""The values of study E's seed document (docs/exp_neuron.md), kept as data with their units.

Architectures (the seed's numbering): 4 = MLP 100-50-25-1 with sigmoid; 5 = MLP 3072-1536-768-1 with sigmoid;
6 = the PReLU CNN (``model=cnn_prelu``). Each row: (dataset, train size, without the neuron, with it, architecture).

Units, as the seed gives them:
- quality (Table 1) and generalization (Table 3): "loss \\ misclassified" = the cubic-hinge loss summed over the
  split (training split for Table 1, validation split for Table 3) and the number of misclassified examples of
  that split (a count; the seed's caption says "misclassification rate", its values are counts);
- speed (Table 2): iterations until the training split is classified with zero errors (read as epochs, see
  docs/exp_neuron.md);
- stability: the fraction of runs that diverge after N(0, σ²) noise, σ = mean|weights of the neuron| / 10
  (the seed states it in words: the exponential neuron "immediately" diverges, an ordinary neuron does not).
"""

from __future__ import annotations

ARCHITECTURES = {4: "MLP 100-50-25-1, sigmoid", 5: "MLP 3072-1536-768-1, sigmoid", 6: "CNN PReLU 64-128-256"}

# (loss_sum, misclassified)
QUALITY = [  # Table 1: final training split
    ("spheres R2=1.01", 10000, (0.0, 0), (0.0, 0), 4),
    ("spheres R2=1.01", 15000, (44.3, 7), (3693.2, 1096), 4),
    ("spheres R2=1.01", 20000, (8311.8, 2338), (335.8, 35), 4),
    ("gaussians m2=0.1", 15000, (0.0, 0), (0.0, 0), 4),
    ("gaussians m2=0.1", 20000, (41.0, 0), (53.9, 0), 4),
    ("mnist 1v7", 13000, (0.0, 0), (0.0, 0), 6),
    ("cifar10 0v1", 2000, (0.431, 1), (0.994, 2), 5),
]

SPEED = [  # Table 2: iterations to zero training errors (best over the hyper-parameter grid)
    ("spheres R2=1.01", 1000, 20, 23, 4),
    ("spheres R2=1.01", 5000, 28, 35, 4),
    ("spheres R2=1.01", 10000, 77, 126, 4),
    ("gaussians m2=0.1", 10000, 45, 67, 4),
    ("gaussians m2=0.1", 15000, 95, 131, 4),
    ("mnist 1v7", 13000, 15, 20, 6),
    ("cifar10 0v1", 2000, 20, 23, 5),
]

GENERALIZATION = [  # Table 3: validation split at the setting with the lowest test error
    ("spheres R2=1.5", 5000, (2684.8, 658), (6901.4, 796), 4),
    ("spheres R2=5", 5000, (678.1, 140), (2351.7, 188), 4),
    ("gaussians m2=0.5", 5000, (384.2, 56), (788.6, 63), 4),
    ("gaussians m2=1", 5000, (1.1, 0), (4.6, 0), 4),
    ("mnist 1v7", 13000, (0.2, 5), (0.6, 4), 6),
    ("cifar10 0v1", 2000, (3901.5, 314), (4516.7, 313), 5),
]

STABILITY = [  # fraction of perturbed runs that diverge: (target, fraction)
    ("exp_neuron", 1.0),
    ("hidden_neuron", 0.0),
]

UNITS = {
    "quality": "training split: loss summed over the split \\ number of misclassified examples",
    "speed": "epochs until zero training errors (best over the grid); steps beside it",
    "generalization": "validation split: loss summed over the split \\ number of misclassified examples",
    "stability": "fraction of perturbed runs that diverged",
}

# Embedded stand-ins, compared with the seed's row of the real data set of the same role (the seed's size is shown)
STANDINS = {"mnist5k 1v7": "mnist 1v7", "digits 1v7": "cifar10 0v1"}  # digits: the small MLP set, as CIFAR
