"""lossland training entry point: ``python train.py [-m] key=value ...`` (see README.md)."""

import sys

import hydra
from omegaconf import DictConfig

from lossland.cli import fail
from lossland.config import CONFIG_DIR, check_overrides
from lossland.errors import LosslandError


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> None:
    from lossland.train import run

    try:
        run(cfg)
    except LosslandError as e:
        fail(e)


if __name__ == "__main__":
    try:
        check_overrides(sys.argv[1:])
    except LosslandError as e:
        fail(e)
    main()
