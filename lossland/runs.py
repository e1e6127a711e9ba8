"""Reading finished runs back: config, model weights and checkpoints from a run directory."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from lossland.errors import LosslandError


def run_config(run_dir: str | Path):
    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.exists():
        raise LosslandError(f"{run_dir} is not a lossland run directory (no .hydra/config.yaml)")
    return OmegaConf.load(path)


def checkpoint_paths(run_dir: str | Path) -> list[Path]:
    """Scheduled checkpoints in step order, then ``last.ckpt``."""
    d = Path(run_dir) / "checkpoints"
    steps = sorted(d.glob("step=*.ckpt"))
    return steps + ([d / "last.ckpt"] if (d / "last.ckpt").exists() else [])


def load_checkpoint(path: str | Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except FileNotFoundError:
        raise LosslandError(f"checkpoint {path} does not exist") from None
    except Exception as e:
        raise LosslandError(f"checkpoint {path} is corrupt or unreadable: {type(e).__name__}") from None


def model_state(ckpt: dict) -> dict[str, torch.Tensor]:
    """The ``model.`` part of a LandscapeModule checkpoint's state dict, without the prefix."""
    return {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}


def load_weights_into(model: torch.nn.Module, dm, run_dir: str | Path) -> dict:
    """Load the final weights of another run (``init_from``) into ``model`` and continue its data-order
    RNG stream. Returns the checkpoint."""
    path = Path(run_dir) / "checkpoints" / "last.ckpt"
    if not path.exists():
        raise LosslandError(f"init_from={run_dir}: no checkpoints/last.ckpt there")
    ckpt = load_checkpoint(path)
    try:
        model.load_state_dict(model_state(ckpt))
    except RuntimeError as e:
        first = str(e).splitlines()[0]
        raise LosslandError(f"init_from={run_dir}: its weights do not fit this model ({first})") from None
    if type(dm).__qualname__ in ckpt:  # Lightning stores the datamodule's state under its class name
        dm.load_state_dict(ckpt[type(dm).__qualname__])
    return ckpt


def load_run_model(run_dir: str | Path, checkpoint: str | Path | None = None, data: bool = True):
    """Rebuild a finished run: ``(model, loss, dm, cfg)`` with the weights of ``checkpoint`` (default:
    ``checkpoints/last.ckpt``; may also be a path). ``dm`` is the run's prepared data module (same split)."""
    from lossland.train import build, build_data, build_model

    cfg = run_config(run_dir)
    dm = build_data(cfg)
    loss = build(cfg.loss, "loss")
    model = build_model(cfg, dm, loss)
    path = Path(checkpoint) if checkpoint is not None else Path(run_dir) / "checkpoints" / "last.ckpt"
    if not path.is_absolute() and not path.exists():
        path = Path(run_dir) / "checkpoints" / path
    try:
        model.load_state_dict(model_state(load_checkpoint(path)))
    except RuntimeError as e:
        raise LosslandError(f"{path}: weights do not fit the run's model ({str(e).splitlines()[0]})") from None
    model.eval()
    return model, loss, dm, cfg
