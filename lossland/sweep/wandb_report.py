"""Log a sweep report's figures to the sweep's W&B group (a run of job type ``report``)."""

from __future__ import annotations

import json
from pathlib import Path


def log_report(sweep_dir: str | Path, files) -> str | None:
    """If the sweep's runs logged to W&B, log every PNG of ``files`` to a new run in the same group and
    project, in the same mode (offline by default). Returns the W&B run id, or None."""
    sweep_dir = Path(sweep_dir)
    summaries = [json.loads(p.read_text()) for p in sweep_dir.rglob("summary.json")]
    info = next((s["wandb"] for s in summaries if s.get("wandb")), None)
    if info is None:
        return None
    import wandb
    from omegaconf import OmegaConf

    cfg_path = next(sweep_dir.rglob(".hydra/config.yaml"), None)
    wcfg = OmegaConf.load(cfg_path).logger if cfg_path else {}
    run = wandb.init(project=wcfg.get("project", "lossland"), entity=wcfg.get("entity"), group=info["group"],
                     job_type="report", name="report", dir=str(sweep_dir / "report"),
                     mode=wcfg.get("mode", "offline"), reinit=True)
    try:
        run.log({Path(f).stem: wandb.Image(str(f)) for f in files if str(f).endswith(".png")})
        return run.id
    finally:
        run.finish()
