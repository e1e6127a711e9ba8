"""Log a sweep report's figures to the sweep's W&B group (a run of job type ``report``).

Where the figures go is the choice of the person running ``lossland report``, never of the records read: the
project, entity and mode come from the arguments, else W&B's own environment variables of this process
(``WANDB_PROJECT``, ``WANDB_ENTITY``, ``WANDB_MODE``), else project ``lossland``, mode ``offline``. A received
sweep's ``summary.json`` / ``.hydra/config.yaml`` could otherwise send them to a stranger's project online (or
expand ``${oc.env:...}`` into them). Only the group name is taken from the records, as a plain label.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from lossland.untrusted import file_stem

MODES = ("offline", "online", "disabled")


def _group(sweep_dir: Path) -> str | None:
    """The W&B group the sweep's runs logged to (from the first readable summary that has one)."""
    for p in sorted(sweep_dir.rglob("summary.json")):
        try:
            s = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        info = s.get("wandb") if isinstance(s, dict) else None
        if isinstance(info, dict) and isinstance(info.get("group"), str) and info["group"]:
            return info["group"][:128]
    return None


def log_report(sweep_dir: str | Path, files, project: str | None = None, entity: str | None = None,
               mode: str | None = None) -> str | None:
    """If the sweep's runs logged to W&B, log every PNG of ``files`` to a new run in the same group, in the
    project / entity / mode of this user (module docstring; offline by default). Returns the W&B run id, or
    None."""
    sweep_dir = Path(sweep_dir)
    group = _group(sweep_dir)
    if group is None:
        return None
    mode = mode or os.environ.get("WANDB_MODE") or "offline"
    if mode not in MODES:
        mode = "offline"
    import wandb

    run = wandb.init(project=project or os.environ.get("WANDB_PROJECT") or "lossland",
                     entity=entity or os.environ.get("WANDB_ENTITY") or None, group=group, job_type="report",
                     name="report", dir=str(sweep_dir / "report"), mode=mode, reinit=True)
    try:
        run.log({file_stem(Path(f).stem): wandb.Image(str(f)) for f in files if str(f).endswith(".png")})
        return run.id
    finally:
        run.finish()
