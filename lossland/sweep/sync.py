"""``lossland sync DIR``: upload every offline W&B run of a sweep (each job's, a resumed job's several
``offline-run-*`` directories, the report's) with W&B's own ``wandb sync``, and say what was synced.

Nothing is lost when it cannot sync: the offline files are only read (W&B marks a synced run with a
``.wandb.synced`` file beside it, and a later sync skips those), so the same command syncs the rest later. Without
network it says so in one line before W&B tries (W&B itself retries for minutes); a sync that does not finish in
``timeout`` seconds is stopped and reported the same way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from lossland.errors import LosslandError
from lossland.untrusted import printable

PROBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class OfflineRun:
    """An ``offline-run-<time>-<id>`` directory: the W&B run id, the job directory it belongs to, its log file."""

    path: Path
    file: Path

    @property
    def id(self) -> str:
        return self.file.stem.removeprefix("run-")

    @property
    def job(self) -> Path:
        return self.path.parent.parent  # <job>/wandb/offline-run-*

    @property
    def synced(self) -> bool:
        return self.file.with_suffix(".wandb.synced").exists()


def offline_runs(root: str | Path) -> list[OfflineRun]:
    """Every offline W&B run under ``root`` (oldest first within a job), links not followed."""
    root = Path(root)
    if not root.is_dir():
        raise LosslandError(f"sync: no such directory: {root}")
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        for name in sorted(dirnames):
            d = Path(dirpath) / name
            if name.startswith("offline-run-") and not d.is_symlink():
                files = sorted(f for f in d.glob("run-*.wandb") if f.is_file() and not f.is_symlink())
                if files:
                    found.append(OfflineRun(d, files[0]))
    return sorted(found, key=lambda r: (str(r.job), r.path.name))


def base_url() -> str:
    """The W&B server this user syncs to (``WANDB_BASE_URL`` or W&B's settings)."""
    import wandb

    return str(wandb.setup().settings.base_url).rstrip("/")


def reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> str | None:
    """None if the W&B server answers (any HTTP status), else why not, in a few words."""
    import requests

    try:
        requests.head(url, timeout=timeout, allow_redirects=False)
        return None
    except requests.exceptions.ConnectionError as e:
        reason = str(e.__context__ or e)
        if "Name or service not known" in reason or "nodename nor servname" in reason or "resolve" in reason:
            return f"cannot resolve {urlsplit(url).hostname}"
        return "no connection"
    except requests.exceptions.Timeout:
        return f"no answer in {timeout:g} s"
    except requests.exceptions.RequestException as e:
        return type(e).__name__


def sync(root: str | Path, project: str | None = None, entity: str | None = None, timeout: float = 600.0,
         dry_run: bool = False, out=print) -> list[OfflineRun]:
    """Sync the offline W&B runs under ``root`` that are not synced yet; returns the runs synced now. Raises
    :class:`LosslandError` (one line) when there is nothing to sync from, no network, no W&B credentials, or
    the sync fails or times out — the offline files stay as they were."""
    root = Path(root)
    runs = offline_runs(root)
    if not runs:
        raise LosslandError(f"sync: no offline W&B runs under {root} (jobs log to W&B with logger=wandb, the "
                            "default; lossland report adds its own)")
    todo = [r for r in runs if not r.synced]
    ids = {r.id for r in todo}
    if not todo:
        out(f"lossland sync: all {len(runs)} offline W&B runs under {root} are already synced")
        return []
    what = f"{len(todo)} offline W&B runs ({len(ids)} W&B runs) under {root}"
    if dry_run:
        out(f"lossland sync: would sync {what}:")
        for r in todo:
            out(f"  {printable(_rel(r.path, root), keep_newlines=False)}  (W&B run {r.id})")
        return []
    url = base_url()
    why = reachable(url)
    if why is not None:
        raise LosslandError(f"sync: W&B at {url} is not reachable ({why}): nothing synced; the {len(todo)} offline "
                            f"runs stay in place, run `lossland sync {root}` again with network")
    cmd = [sys.executable, "-m", "wandb", "sync", *(["--project", project] if project else []),
           *(["--entity", entity] if entity else []), *(str(r.path) for r in todo)]
    t0 = time.time()
    # its own process group: a sync that runs out of time ends with W&B's service process, not beside it
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        done = [r for r in todo if r.synced]
        raise LosslandError(f"sync: W&B did not finish in {timeout:g} s ({len(done)} of {len(todo)} runs synced); the "
                            f"offline runs stay in place, run `lossland sync {root}` again") from None
    done = [r for r in todo if r.synced]
    for r in done:
        out(f"  {printable(_rel(r.path, root), keep_newlines=False)}  -> W&B run {r.id}")
    if len(done) < len(todo):
        raise LosslandError(f"sync: {len(todo) - len(done)} of {len(todo)} offline runs not synced "
                            f"({_reason(stderr + stdout, proc.returncode)}); they stay in place, run "
                            f"`lossland sync {root}` again")
    out(f"lossland sync: synced {what} to {url} in {time.time() - t0:.0f} s"
        + (f" (project {project})" if project else ""))
    return done


def _reason(output: str, code: int, limit: int = 200) -> str:
    """W&B's own reason for a failed sync, in a few words: its last error line (else its last line)."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    reason = next((ln for ln in reversed(lines) if "error" in ln.lower()), lines[-1] if lines else f"exit {code}")
    for prefix in ("wandb: ", "Error: ", "ERROR "):
        reason = reason.removeprefix(prefix)
    reason = printable(reason, keep_newlines=False)
    return reason if len(reason) <= limit else reason[:limit] + "..."


def _rel(path: Path, root: Path) -> Path:
    try:
        return path.relative_to(root)
    except ValueError:
        return path
