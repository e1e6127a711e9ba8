"""The one place that reads a run directory back: config, summary, metrics as arrays, checkpoints, and the
rebuilt model (cached).

A *run directory* is a ``train.py`` job directory: it holds ``summary.json`` (written when the run starts,
with ``status: "running"``, and again when it ends) and/or ``.hydra/config.yaml`` with a ``checkpoints/``
folder. :func:`find_runs` is the one way to find runs under a directory; analysis never parses directory
names. ``metrics.csv`` has columns ``step``, ``epoch`` and sparse metric columns (empty cell = not logged
in that row); :attr:`Run.metrics` holds one float64 array per column, NaN where empty. Metric names with
``/`` are also available with ``_`` (``train/loss`` → ``train_loss``) unless that name exists.

A run directory may come from someone else: checkpoints are read with torch's safe loader, the config is
checked before anything in it is built (:func:`lossland.build.check_received_config`), and unreadable records
are one-line :class:`LosslandError` s (docs/reliability.md#files-from-someone-else).

Status: ``ok`` | ``diverged`` | ``failed`` | ``interrupted``. A run whose ``summary.json`` still says
``running`` but whose process is gone (killed), or that has no ``summary.json`` at all, is ``interrupted``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import pickle
import re
import shutil
import socket
import sys
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from lossland.errors import LosslandError
from lossland.records import CONFIG_YAML, METRICS_CSV, SUMMARY_JSON, atomic_torch_save

__all__ = ["Run", "find_runs", "open_run", "load_runs", "load_checkpoint", "convert_checkpoint", "model_state",
           "is_run_dir", "SUMMARY_JSON", "METRICS_CSV", "CONFIG_YAML"]


def is_run_dir(path: Path) -> bool:
    return (path / SUMMARY_JSON).is_file() or ((path / CONFIG_YAML).is_file() and (path / "checkpoints").is_dir())


def locate(path: str | Path, root: str | Path) -> Path:
    """A run directory a record names (``init_from``, a connect path's ends), found below ``root`` even after the
    sweep was moved or copied: ``root`` joined with the longest trailing part (two or more names) of the path
    that is a run below ``root`` (records may hold paths relative to where a sweep ran, or absolute ones of the
    original place); else the path itself if it is a run; else ``root`` / its last name if that is a run."""
    path = Path(path)
    tails = [Path(*path.parts[k:]) for k in range(len(path.parts))]
    tails = [t for t in tails if not t.is_absolute()]
    for tail in tails:
        if len(tail.parts) >= 2 and is_run_dir(Path(root) / tail):
            return Path(root) / tail
    if is_run_dir(path):
        return path
    if tails and is_run_dir(Path(root) / tails[-1]):
        return Path(root) / tails[-1]
    return path


def find_runs(root: str | Path) -> list[Path]:
    """Every run directory under ``root`` (itself included), sorted by depth then path. Our own outputs
    (``report/``) and hidden directories (``.hydra``, ``.submitit``) are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise LosslandError(f"{root} is not a directory")
    found = {p.parent for p in root.rglob(SUMMARY_JSON)}
    found |= {p.parent.parent for p in root.rglob(CONFIG_YAML.as_posix())}
    out = []
    for d in found:
        rel = d.relative_to(root).parts
        if any(part.startswith(".") or part == "report" for part in rel) or not is_run_dir(d):
            continue
        out.append(d)
    return sorted(out, key=lambda p: (len(p.parts), str(p)))


CONVERT_HINT = "python -m lossland.runs convert"


def load_checkpoint(path: str | Path) -> dict:
    """A checkpoint, read with torch's safe loader (``weights_only=True``: tensors, containers and plain values;
    a pickle cannot run code). One that needs more is refused in one line saying how to convert it if trusted."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise LosslandError(f"checkpoint {path} does not exist") from None
    except pickle.UnpicklingError as e:
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if found is None:  # random bytes, a truncated file
            reason = re.search(r"WeightsUnpickler error:\s*(\S[^\n]*)", str(e))
            why = reason.group(1).strip() if reason else (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise LosslandError(f"checkpoint {path} is corrupt or unreadable: {why}") from None
        raise LosslandError(f"checkpoint {path} holds objects beyond tensors and plain values ({found.group(1)}), "
                            f"which could run code when loaded: not loaded; if you trust it, convert it with "
                            f"`{CONVERT_HINT} {path}`") from None
    except Exception as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        raise LosslandError(f"checkpoint {path} is corrupt or unreadable: {type(e).__name__}"
                            + (f" ({first})" if first else "")) from None
    return _checked(ckpt, path)


def _checked(ckpt, path) -> dict:
    """The structure lossland reads (a dict; ``state_dict`` of tensors (and modules' ``_extra_state``), integer
    ``global_step``, ``lossland`` a dict) or one line saying what is wrong."""
    problem = None
    if not isinstance(ckpt, dict):
        problem = f"a {type(ckpt).__name__}, not a dict"
    elif "state_dict" in ckpt and not (isinstance(ckpt["state_dict"], dict) and all(
            isinstance(k, str) and (isinstance(v, torch.Tensor) or k.endswith("_extra_state"))  # a module's own
            for k, v in ckpt["state_dict"].items())):
        problem = "its state_dict is not names -> tensors"
    elif any(k in ckpt and not isinstance(ckpt[k], int) for k in ("global_step", "epoch")):
        problem = "its global_step or epoch is not an integer"
    elif not isinstance(ckpt.get("lossland", {}), dict):
        problem = "its lossland entry is not a dict"
    if problem:
        raise LosslandError(f"checkpoint {path} is not a lossland checkpoint: {problem}")
    return ckpt


def _plain(obj):
    """``obj`` in types the safe loader reads: numpy arrays and scalars to tensors / Python numbers, OmegaConf
    nodes to containers, paths to strings; anything else to its ``repr``."""
    if isinstance(obj, np.generic):  # before the builtins: np.float64 is a float
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, torch.Tensor, torch.Size,
                                       torch.dtype, torch.device)):
        return obj
    if isinstance(obj, dict):
        return {_plain(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        items = [_plain(v) for v in obj]
        return items if isinstance(obj, (list, set)) else tuple(items)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if OmegaConf.is_config(obj):
        return _plain(OmegaConf.to_container(obj, resolve=False))
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return repr(obj)


def convert_checkpoint(path: str | Path) -> Path:
    """Rewrite a **trusted** checkpoint (read with the full unpickler, which runs whatever the file says) in
    types the safe loader reads; the original stays beside it as ``<name>.orig``."""
    path = Path(path)
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    backup = path.with_name(path.name + ".orig")
    if not backup.exists():
        shutil.copy2(path, backup)
    atomic_torch_save(_plain(ckpt), path)
    load_checkpoint(path)
    return path


def model_state(ckpt: dict) -> dict[str, torch.Tensor]:
    """The ``model.`` part of a checkpoint's state dict, without the prefix."""
    return {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}


def _process_alive(summary: dict) -> bool:
    pid, host = summary.get("pid"), summary.get("host")
    if pid is None or host != socket.gethostname():
        return host is not None and host != socket.gethostname()  # another machine: assume it still runs
    try:
        pid = int(pid)
    except (TypeError, ValueError, OverflowError):
        return False
    if pid <= 0:  # 0 / negative would name process groups
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True


def read_metrics_csv(path: Path) -> dict[str, np.ndarray]:
    if not path.exists():
        return {}
    try:
        with open(path, newline="") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header:
                return {}
            cols: list[list[float]] = [[] for _ in header]
            for row in reader:
                if not row:
                    continue
                for i in range(len(header)):
                    cell = row[i].strip() if i < len(row) else ""
                    try:
                        cols[i].append(float(cell) if cell else math.nan)
                    except ValueError:
                        cols[i].append(math.nan)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise LosslandError(f"unreadable {path}: {type(e).__name__}") from None
    metrics = {name: np.asarray(c, dtype=np.float64) for name, c in zip(header, cols)}
    for name in list(metrics):
        alias = name.replace("/", "_")
        if alias != name and alias not in metrics:
            metrics[alias] = metrics[name]
    return metrics


def _first(a) -> float | None:
    if a is None:
        return None
    a = a[~np.isnan(a)]
    return float(a[0]) if a.size else None


class Run:
    """One run directory, read lazily: ``config``, ``summary``, ``metrics``, ``checkpoints()``,
    ``model(checkpoint)``. Build one with :func:`open_run` (cached per directory and record times)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._models: dict[str, tuple] = {}

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # ------------------------------------------------------------------ records
    @cached_property
    def config(self) -> DictConfig:
        path = self.path / CONFIG_YAML
        if not path.exists():
            raise LosslandError(f"{self.path} is not a lossland run directory (no .hydra/config.yaml)")
        try:
            cfg = OmegaConf.load(path)
        except Exception as e:  # YAML errors (OmegaConf's loader is a safe one: no Python tags)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise LosslandError(f"unreadable {path}: {first}") from None
        if not isinstance(cfg, DictConfig):
            raise LosslandError(f"unreadable {path}: not a mapping")
        from lossland.build import check_received_config  # (here: reading records does not import Lightning)

        check_received_config(cfg, str(path))  # before anything in it is resolved or instantiated
        return cfg

    @cached_property
    def summary(self) -> dict:
        """``summary.json`` ({} when the run never wrote one); an unreadable file is a user error."""
        path = self.path / SUMMARY_JSON
        if not path.exists():
            return {}
        try:
            summary = json.loads(path.read_text())
        except (OSError, ValueError) as e:  # JSON errors, random bytes (UnicodeDecodeError)
            raise LosslandError(f"unreadable {path}: {e}") from None
        if not isinstance(summary, dict):
            raise LosslandError(f"unreadable {path}: not a JSON object")
        return summary

    @property
    def status(self) -> str:
        s = self.summary.get("status")
        if s is None or (s == "running" and not _process_alive(self.summary)):
            return "interrupted"
        return str(s)

    @cached_property
    def metrics(self) -> dict[str, np.ndarray]:
        return read_metrics_csv(self.path / METRICS_CSV)

    def rows(self) -> list[dict[str, float]]:
        """``metrics.csv`` as one dict per row (columns empty in that row omitted)."""
        m = {k: v for k, v in self.metrics.items() if k in self._columns()}
        n = len(m.get("step", []))
        return [{k: float(v[i]) for k, v in m.items() if not math.isnan(v[i])} for i in range(n)]

    def _columns(self) -> list[str]:
        path = self.path / METRICS_CSV
        if not path.exists():
            return []
        try:
            with open(path, newline="") as f:
                return next(csv.reader(f), [])
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise LosslandError(f"unreadable {path}: {type(e).__name__}") from None

    @property
    def elr(self) -> float | None:
        """The run's elr: ``summary["elr"]``, else the first logged ``elr``, else ``summary["lr"]``."""
        for v in (self.summary.get("elr"), _first(self.metrics.get("elr")), self.summary.get("lr")):
            if v is not None:
                try:
                    v = float(v)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(v):
                    return v
        return None

    @property
    def steps(self) -> int | None:
        """The steps the run took: its summary's; for a run that was killed (its summary still says what it had
        at the start) the last step its ``metrics.csv`` holds, when later."""
        steps = self.summary.get("steps")
        steps = int(steps) if isinstance(steps, (int, float)) and math.isfinite(steps) else None
        if self.status in ("interrupted", "failed", "running"):
            logged = self.metrics.get("step")
            if logged is not None and logged.size and np.isfinite(logged).any():
                steps = max(steps or 0, int(np.nanmax(logged)))
        return steps

    @property
    def final(self) -> dict:
        final = self.summary.get("final")
        return dict(final) if isinstance(final, dict) else {}

    def series(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(steps, values) of one metric, rows where it was logged; the last value wins on repeated steps."""
        v = self.metrics.get(name)
        if v is None or "step" not in self.metrics:
            return np.empty(0), np.empty(0)
        s = self.metrics["step"]
        keep = ~np.isnan(v)
        s, v = s[keep], v[keep]
        if s.size:
            order = np.argsort(s, kind="stable")
            s, v = s[order], v[order]
            last = np.r_[s[1:] != s[:-1], True]
            s, v = s[last], v[last]
        return s, v

    def final_value(self, name: str) -> float:
        """``summary["final"][name]`` when present, else the last logged value, else NaN. A diverged run has only
        what its summary measured at the last finite weights: a value logged before the divergence is not its
        final value (NaN)."""
        v = self.final.get(name)
        if v is not None:
            try:
                return float(v)
            except (TypeError, ValueError):
                pass
        if self.status == "diverged":
            return math.nan
        _, vals = self.series(name)
        return float(vals[-1]) if vals.size else math.nan

    def history(self) -> dict[str, np.ndarray]:
        """The metrics as a dict of arrays (the form :func:`lossland.studies.sphere.phases.assign_phase` takes)."""
        return self.metrics

    # -------------------------------------------------------------- checkpoints
    def checkpoints(self) -> list[Path]:
        """Scheduled checkpoints in step order, then ``last.ckpt``."""
        d = self.path / "checkpoints"
        return sorted(d.glob("step=*.ckpt")) + ([d / "last.ckpt"] if (d / "last.ckpt").exists() else [])

    def owns(self, ckpt: dict) -> bool:
        """Was ``ckpt`` written by this run (not by an earlier run in the same directory)? Checkpoints
        and summaries of older versions carry no run id and are accepted."""
        mine, theirs = self.summary.get("run_id"), (ckpt.get("lossland") or {}).get("run_id")
        return mine is None or theirs is None or mine == theirs

    def checkpoint_path(self, checkpoint: str | Path | None = None) -> Path:
        """``checkpoints/last.ckpt`` by default; a name inside ``checkpoints/`` or any path."""
        path = Path(checkpoint) if checkpoint is not None else self.path / "checkpoints" / "last.ckpt"
        if not path.is_absolute() and not path.exists():
            path = self.path / "checkpoints" / path
        if not path.exists():
            raise LosslandError(f"{self.path}: no checkpoint {path.name} (did the run finish?)")
        return path

    # ------------------------------------------------------------------ rebuild
    def data(self):
        """The run's prepared data module (the same split; built once per data config per process)."""
        from lossland.build import build_data

        return build_data(self.config)

    def model(self, checkpoint: str | Path | None = None):
        """``(model, loss, dm)`` rebuilt from the config with the weights of ``checkpoint`` (default
        ``last.ckpt``), in eval mode; cached per checkpoint file and modification time."""
        path = self.checkpoint_path(checkpoint)
        key = f"{path.resolve()}:{path.stat().st_mtime_ns}"
        if key not in self._models:
            from lossland.build import build_loss, build_model

            dm = self.data()
            loss = build_loss(self.config)
            model = build_model(self.config, dm, loss)
            load_weights(model, load_checkpoint(path), path)
            self._models[key] = (model.eval(), loss, dm)
        return self._models[key]


def load_weights(model: torch.nn.Module, ckpt: dict, where) -> None:
    try:
        model.load_state_dict(model_state(ckpt))
    except RuntimeError as e:
        raise LosslandError(f"{where}: weights do not fit the run's model ({str(e).splitlines()[0]})") from None


@lru_cache(maxsize=8)
def _open(path: str, stamp: tuple) -> Run:
    return Run(path)


def open_run(path: str | Path) -> Run:
    """A :class:`Run` for ``path``, cached per process until its summary or last checkpoint changes
    (a multirun over connection methods reuses its two endpoints' rebuilt models)."""
    p = Path(str(path)).expanduser()
    if not p.is_dir():
        raise LosslandError(f"{path}: no such run directory")
    stamp = tuple((p / f).stat().st_mtime_ns if (p / f).exists() else 0
                  for f in (SUMMARY_JSON, "checkpoints/last.ckpt", METRICS_CSV))
    return _open(str(p.resolve()), stamp)


def load_runs(root: str | Path) -> tuple[list[Run], list[str]]:
    """Every run under ``root``; returns (runs, one-line problems for runs that could not be read)."""
    runs, problems = [], []
    for d in find_runs(root):
        run = Run(d)
        try:
            run.summary  # noqa: B018 — read now so that an unreadable file is reported here
            run.metrics  # noqa: B018
            runs.append(run)
        except LosslandError as e:
            problems.append(str(e))
    return runs, problems


def main(argv: list[str] | None = None) -> int:
    """``python -m lossland.runs convert CKPT [CKPT ...]``: rewrite trusted checkpoints for the safe loader."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) < 2 or argv[0] != "convert":
        print("usage: python -m lossland.runs convert CKPT [CKPT ...]  (only checkpoints you trust: reading "
              "them runs whatever they hold)", file=sys.stderr)
        return 2
    for p in argv[1:]:
        try:
            print(convert_checkpoint(p))
        except Exception as e:  # a missing or corrupt file: one line
            why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"lossland: error: cannot convert {p}: {why}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
