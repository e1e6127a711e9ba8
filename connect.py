"""lossland mode-connectivity entry point: ``python connect.py [-m] a=RUN_A b=RUN_B align=... path=...``
(see docs/connect.md)."""

import sys

import hydra
from omegaconf import DictConfig

from lossland.cli import fail
from lossland.config import CONFIG_DIR, check_overrides
from lossland.errors import LosslandError


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="connect")
def main(cfg: DictConfig) -> None:
    from lossland.connect.run import run_connect

    try:
        run_connect(cfg)
    except LosslandError as e:
        fail(e)


if __name__ == "__main__":
    try:
        check_overrides(sys.argv[1:], "connect", CONFIG_DIR)
    except LosslandError as e:
        fail(e)
    main()
