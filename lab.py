"""lossland optimizer lab: ``python lab.py [-m] function=... task=... key=value ...`` (see docs/optim_lab.md)."""

import sys

import hydra
from omegaconf import DictConfig

from lossland.cli import fail
from lossland.config import CONFIG_DIR, check_overrides
from lossland.errors import LosslandError


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="lab")
def main(cfg: DictConfig) -> None:
    from lossland.lab.app import run_lab

    try:
        run_lab(cfg)
    except LosslandError as e:
        fail(e)


if __name__ == "__main__":
    try:
        check_overrides(sys.argv[1:], "lab", CONFIG_DIR)
    except LosslandError as e:
        fail(e)
    main()
