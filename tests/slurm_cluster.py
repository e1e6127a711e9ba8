"""A single-node SLURM cluster in a directory, for the SLURM tests (tests/test_slurm.py) and by hand.

    python tests/slurm_cluster.py up DIR      # install slurm-wlm + munge if missing, start the daemons, wait idle
    export SLURM_CONF=DIR/slurm.conf PATH=DIR/bin:$PATH   # then sbatch, squeue, train.py -m ... submitit_slurm
    python tests/slurm_cluster.py down DIR    # cancel the cluster's jobs, stop the daemons it started

Everything lives in DIR: a fresh munge key, ``slurm.conf`` (one node with this machine's CPUs and memory, one
partition ``debug``, requeue allowed, no cgroups: ``proctrack/linuxproc``, ``task/none``), state, spool and logs.
``munged``, ``slurmctld`` and ``slurmd`` run in the foreground of their own sessions (no systemd) on free ports
and a private munge socket, so the cluster touches nothing outside DIR and can sit beside another one; their
PIDs are recorded in ``DIR/pids.json`` and ``down`` stops exactly those processes.

There is no accounting database (slurmdbd), so the real ``sacct`` answers nothing; ``DIR/bin/sacct`` (put it
first on PATH) answers the one query submitit makes, ``sacct -o JobID,State,NodeList --parsable2 -j ID``, from
``scontrol show job`` (finished jobs stay there for ``MinJobAge``). Without it submitit would learn that a job
ended only from its result file, and wait forever for a job that died without one (cancelled, killed).

Debian/Ubuntu, as root (the daemons run as root: ``SlurmUser=root``); stdlib only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PACKAGES = ("slurm-wlm", "munge")
COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "srun", "squeue", "sinfo", "scontrol", "scancel")
DAEMONS = ("munged", "slurmctld", "slurmd")
PARTITIONS = ("debug", "gpu")  # both the one node; debug is the default, gpu is the name docs/scale.md uses


class ClusterError(Exception):
    """The cluster cannot be installed or brought up here (the reason, in one line plus log tails)."""


def install() -> float:
    """Install slurm-wlm and munge with apt-get if a command is missing; returns the seconds it took (0: none)."""
    missing = [c for c in COMMANDS if shutil.which(c) is None]
    if not missing:
        return 0.0
    if not shutil.which("apt-get"):
        raise ClusterError(f"{', '.join(missing)} not installed and no apt-get to install {' '.join(PACKAGES)}")
    if os.geteuid() != 0:
        raise ClusterError(f"{', '.join(missing)} not installed; installing {' '.join(PACKAGES)} needs root")
    t0 = time.time()
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:  # stale or empty package lists (a fresh container): update once, then retry
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, text=True)
        res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise ClusterError(f"apt-get install {' '.join(PACKAGES)} failed: {res.stderr.strip()[-500:]}")
    if missing := [c for c in COMMANDS if shutil.which(c) is None]:
        raise ClusterError(f"{', '.join(missing)} not on PATH after installing {' '.join(PACKAGES)}")
    return time.time() - t0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_fields(cpus: int | None = None, memory_mb: int | None = None, gpus: int = 0) -> dict[str, str]:
    """This machine as a SLURM node: ``slurmd -C``'s own description (CPUs, sockets, cores, memory), so the node
    registers without a mismatch, memory minus 5% for the daemons. ``cpus``, ``memory_mb``, ``gpus``: claim
    other resources (``SlurmdParameters=config_overrides``), so that jobs asking for more than this machine has
    (``--cpus-per-task=8``, ``--mem=16G``, ``--gpus-per-node=1``) are scheduled; a claimed GPU is a fake device
    (``/dev/null``, CUDA_VISIBLE_DEVICES is set) for jobs that run on the CPU."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    fields = dict(f.split("=", 1) for f in out.split())
    fields["RealMemory"] = str(int(int(fields["RealMemory"]) * 0.95))
    if cpus:
        fields.update(CPUs=str(cpus), Boards="1", SocketsPerBoard="1", CoresPerSocket=str(cpus), ThreadsPerCore="1")
    if memory_mb:
        fields["RealMemory"] = str(memory_mb)
    if gpus:
        fields["Gres"] = f"gpu:{gpus}"
    fields["NodeAddr"] = "127.0.0.1"
    return fields


def write_config(d: Path, cpus: int | None = None, memory_mb: int | None = None, gpus: int = 0) -> Path:
    """The munge key and slurm.conf of a cluster in ``d`` (node resources: :func:`node_fields`); returns the
    path of slurm.conf. Partitions: ``debug`` (the default) and ``gpu``, both the one node."""
    if gpus not in (0, 1):
        raise ClusterError(f"gpus={gpus}: the fake GPU device is /dev/null, so at most 1")
    for sub in ("state", "spool", "log", "munge"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(d / "munge", 0o700)
    key = d / "munge" / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
    node = node_fields(cpus, memory_mb, gpus)
    host = node["NodeName"]
    lines = {
        "ClusterName": "lossland",
        "SlurmctldHost": f"{host}(127.0.0.1)",
        "SlurmctldPort": free_port(),
        "SlurmdPort": free_port(),
        "SlurmUser": "root",
        "SlurmdUser": "root",
        "AuthType": "auth/munge",
        # a requeued job waits cred_expire + 1 s before it may start again (120 s by default)
        "AuthInfo": f"socket={d / 'munge' / 'munge.socket'},cred_expire=5",
        "CredType": "cred/munge",
        "StateSaveLocation": d / "state",
        "SlurmdSpoolDir": d / "spool",
        "SlurmctldPidFile": d / "slurmctld.pid",
        "SlurmdPidFile": d / "slurmd.pid",
        "SlurmctldLogFile": d / "log" / "slurmctld.log",
        "SlurmdLogFile": d / "log" / "slurmd.log",
        "ProctrackType": "proctrack/linuxproc",
        "TaskPlugin": "task/none",
        "MpiDefault": "none",
        "SwitchType": "switch/none",
        "JobRequeue": 1,
        "ReturnToService": 2,
        "SchedulerType": "sched/backfill",
        # schedule at once (batch jobs would wait up to 3 s) and look at pending jobs every 2 s (60 s by default),
        # so that a requeued job starts as soon as it is eligible
        "SchedulerParameters": "batch_sched_delay=0,sched_interval=2,bf_interval=2",
        "SelectType": "select/cons_tres",
        "SelectTypeParameters": "CR_CPU",
        "AccountingStorageType": "accounting_storage/none",
        "JobCompType": "jobcomp/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "KillWait": 5,          # seconds between SIGTERM and SIGKILL when a job is cancelled or requeued
        "MinJobAge": 3600,      # keep finished jobs visible to scontrol for an hour (no accounting database)
        "SlurmctldTimeout": 30,
        "SlurmdTimeout": 60,
        "InactiveLimit": 0,
        "Waittime": 0,
        "SlurmctldDebug": "info",
        "SlurmdDebug": "info",
    }
    if cpus or memory_mb or gpus:
        lines["SlurmdParameters"] = "config_overrides"  # the node claims what the configuration says
    if gpus:
        lines["GresTypes"] = "gpu"
        (d / "gres.conf").write_text(f"AutoDetect=off\nNodeName={host} Name=gpu File=/dev/null\n")
    text = "".join(f"{k}={v}\n" for k, v in lines.items())
    text += " ".join(f"{k}={v}" for k, v in node.items()) + " State=UNKNOWN\n"
    for name in PARTITIONS:
        text += (f"PartitionName={name} Nodes={host} Default={'YES' if name == PARTITIONS[0] else 'NO'} "
                 "MaxTime=INFINITE State=UP\n")
    conf = d / "slurm.conf"
    conf.write_text(text)
    return conf


class Cluster:
    """A cluster in ``dir`` (written by :func:`write_config`); ``env`` is what a client command needs."""

    def __init__(self, directory: str | Path, cpus: int | None = None, memory_mb: int | None = None, gpus: int = 0):
        self.resources = {"cpus": cpus, "memory_mb": memory_mb, "gpus": gpus}
        self.dir = Path(directory).resolve()
        self.conf = self.dir / "slurm.conf"
        self.bin = self.dir / "bin"
        path = f"{self.bin}{os.pathsep}{os.environ.get('PATH', '')}"  # the sacct shim first
        self.env = dict(os.environ, SLURM_CONF=str(self.conf), PATH=path)
        self.pids_file = self.dir / "pids.json"
        self.install_s = 0.0
        self.start_s = 0.0
        self._procs: dict[str, subprocess.Popen] = {}  # started by this process: reaped when stopped

    # ------------------------------------------------------------------------------------------ clients
    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> str:
        res = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and res.returncode != 0:
            raise ClusterError(f"{' '.join(cmd)}: {res.stderr.strip() or res.stdout.strip()}")
        return res.stdout

    def node_state(self) -> str:
        """The node's state (``idle``, ``mixed``, ``allocated``, ``down``, ...; once per partition in sinfo)."""
        try:
            states = set(self.run("sinfo", "-h", "-N", "-o", "%T", check=False, timeout=10).split())
        except subprocess.TimeoutExpired:
            return ""
        return ",".join(sorted(states))

    def jobs(self) -> list[str]:
        """Ids of the cluster's jobs still in the queue (pending, running, completing)."""
        out = self.run("squeue", "-h", "-r", "-o", "%i", check=False, timeout=20)
        return out.split()

    def job(self, job_id: str) -> dict[str, str]:
        """``scontrol show job`` of one job (array task: ``<array>_<task>``) as a dict ({} if unknown)."""
        out = self.run("scontrol", "-o", "show", "job", job_id, check=False)
        fields = {}
        for tok in out.split():
            if "=" in tok:
                k, v = tok.split("=", 1)
                fields.setdefault(k, v)
        return fields

    # ----------------------------------------------------------------------------------------- daemons
    def _pids(self) -> dict[str, int]:
        return json.loads(self.pids_file.read_text()) if self.pids_file.exists() else {}

    def _start(self, name: str, cmd: list[str]) -> None:
        log = open(self.dir / "log" / f"{name}.out", "ab")
        proc = subprocess.Popen(cmd, env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=self.dir)
        log.close()
        self._procs[name] = proc
        pids = self._pids()
        pids[name] = proc.pid
        self.pids_file.write_text(json.dumps(pids))

    def _alive(self, name: str, pid: int) -> bool:
        """Whether ``pid`` is still the daemon this cluster started (not a reused PID)."""
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return False
        return state != "Z" and Path(cmdline[0].decode()).name == name and str(self.dir).encode() in b" ".join(cmdline)

    def _wait_for(self, what: str, ok, timeout: float) -> None:
        t0 = time.time()
        while not ok():
            for name, proc in self._procs.items():
                if proc.poll() is not None:
                    raise ClusterError(f"{name} exited (status {proc.returncode}) while waiting for {what}"
                                       f"{self._log_tail(name)}")
            if time.time() - t0 > timeout:
                raise ClusterError(f"timed out after {timeout:.0f} s waiting for {what}{self._log_tail()}")
            time.sleep(0.2)

    def _log_tail(self, name: str | None = None) -> str:
        names = [name] if name else list(DAEMONS)
        tails = []
        for n in names:
            for p in (self.dir / "log" / f"{n}.out", self.dir / "log" / f"{n}.log"):
                if p.exists() and p.read_text(errors="replace").strip():
                    tails.append(f"\n--- {p} ---\n" + "\n".join(p.read_text(errors="replace").splitlines()[-15:]))
        return "".join(tails)

    def up(self, timeout: float = 90) -> Cluster:
        """Install if needed, write the configuration, start the daemons and wait until the node is idle.
        On failure the daemons started so far are stopped and :class:`ClusterError` says why."""
        self.install_s = install()
        t0 = time.time()
        self.dir.mkdir(parents=True, exist_ok=True)
        if any(self._alive(n, p) for n, p in self._pids().items()):
            raise ClusterError(f"a cluster is already running in {self.dir} (python {__file__} down {self.dir})")
        self.pids_file.unlink(missing_ok=True)
        try:
            write_config(self.dir, **self.resources)
            self.bin.mkdir(exist_ok=True)
            shim = self.bin / "sacct"
            shim.write_text(f"#!/bin/sh\nexec {sys.executable} {Path(__file__).resolve()} sacct \"$@\"\n")
            shim.chmod(0o755)
            m = self.dir / "munge"
            sock = m / "munge.socket"
            self._start("munged", ["munged", "-F", "-f", f"--key-file={m / 'munge.key'}", f"--socket={sock}",
                                   f"--pid-file={m / 'munged.pid'}", f"--log-file={self.dir / 'log' / 'munged.log'}",
                                   f"--seed-file={m / 'munged.seed'}"])
            self._wait_for("munged's socket", sock.exists, 20)
            self._start("slurmctld", ["slurmctld", "-D", "-c", "-i", "-f", str(self.conf)])
            self._wait_for("slurmctld", lambda: self.run("scontrol", "ping", check=False, timeout=10).find("UP") >= 0,
                           60)
            self._start("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
            self._wait_for("the node to be idle", lambda: self.node_state() == "idle", timeout)
        except BaseException as e:
            self.down()
            if isinstance(e, (ClusterError, OSError, subprocess.SubprocessError)):
                raise ClusterError(str(e)) from e
            raise
        self.start_s = time.time() - t0
        return self

    def cancel_all(self, timeout: float = 60) -> None:
        """Cancel every job in the queue and wait until the queue is empty (their processes gone)."""
        if not any(self._alive("slurmctld", p) for n, p in self._pids().items() if n == "slurmctld"):
            return
        t0 = time.time()
        while (ids := self.jobs()) and time.time() - t0 < timeout:
            self.run("scancel", *ids, check=False)
            time.sleep(0.5)

    def down(self) -> list[str]:
        """Cancel the cluster's jobs, then stop the daemons this cluster started (by their recorded PIDs,
        SIGTERM, then SIGKILL after 10 s). Returns the names of those that had to be killed."""
        try:
            self.cancel_all()
        except (ClusterError, OSError, subprocess.SubprocessError):
            pass
        killed = []
        for name, pid in sorted(self._pids().items(), key=lambda kv: -DAEMONS.index(kv[0])):
            if not self._alive(name, pid):
                continue
            os.kill(pid, signal.SIGTERM)
            t0 = time.time()
            while self._alive(name, pid) and time.time() - t0 < 10:
                time.sleep(0.1)
            if self._alive(name, pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(name)
            if name in self._procs:
                self._procs.pop(name).wait(timeout=10)
        self.pids_file.unlink(missing_ok=True)
        return killed

    def status(self) -> str:
        running = {n: p for n, p in self._pids().items() if self._alive(n, p)}
        if not running:
            return f"no cluster running in {self.dir}"
        return (f"SLURM_CONF={self.conf}\ndaemons: {json.dumps(running)}\nnode: {self.node_state()}\n"
                f"queue: {' '.join(self.jobs()) or 'empty'}")


def sacct(argv: list[str]) -> int:
    """``sacct -o JobID,State,NodeList --parsable2 -j ID [-j ID ...]`` (submitit's query) from ``scontrol``
    (finished jobs stay there for MinJobAge)."""
    fields, ids, i = None, [], 0
    while i < len(argv):
        if argv[i] in ("-o", "--format") and i + 1 < len(argv):
            fields, i = argv[i + 1].split(","), i + 2
        elif argv[i] in ("-j", "--jobs") and i + 1 < len(argv):
            ids, i = ids + argv[i + 1].split(","), i + 2
        elif argv[i] in ("--parsable2", "-P"):
            i += 1
        else:
            print(f"sacct (slurm_cluster shim): unsupported argument {argv[i]}", file=sys.stderr)
            return 1
    if fields is None or not ids or set(fields) - {"JobID", "State", "NodeList"}:
        print("sacct (slurm_cluster shim): only -o JobID,State,NodeList --parsable2 -j ID", file=sys.stderr)
        return 1
    lines = ["|".join(fields)]
    for job_id in ids:
        out = subprocess.run(["scontrol", "-o", "show", "job", job_id], capture_output=True, text=True).stdout
        rows = [dict(tok.split("=", 1) for tok in row.split() if "=" in tok) for row in out.splitlines()]
        seen, script = set(), None
        for f in rows:
            task = f.get("ArrayTaskId", "").split("%")[0]
            seen |= indices(task)
            script = script or f.get("Command")
            jid = f"{f['ArrayJobId']}_{f'[{task}]' if '-' in task or ',' in task else task}" if task else f["JobId"]
            lines.append(row_of(fields, jid, f.get("JobState", "UNKNOWN"), f.get("NodeList", "")))
        # A pending array task that was cancelled leaves no record in slurmctld (sacct would say CANCELLED):
        # the indices the batch script asked for (#SBATCH --array=0-3%2) that are gone.
        if rows and rows[0].get("ArrayJobId") and script and Path(script).is_file():
            spec = next((ln.split("=", 1)[1] for ln in Path(script).read_text().splitlines()
                         if ln.startswith("#SBATCH --array=")), "")
            for i in sorted(indices(spec.split("%")[0]) - seen):
                lines.append(row_of(fields, f"{rows[0]['ArrayJobId']}_{i}", "CANCELLED", ""))
    print("\n".join(lines))
    return 0


def indices(spec: str) -> set[int]:
    """The array task indices of ``0-3``, ``2,4-5``, ``7`` (empty for "")."""
    out = set()
    for part in filter(None, spec.split(",")):
        lo, _, hi = part.partition("-")
        out.update(range(int(lo), int(hi or lo) + 1))
    return out


def row_of(fields: list[str], job_id: str, state: str, nodes: str) -> str:
    return "|".join({"JobID": job_id, "State": state, "NodeList": nodes}[k] for k in fields)


def main(argv: list[str]) -> int:
    if argv[:1] == ["sacct"]:  # the shim DIR/bin/sacct
        return sacct(argv[1:])
    import argparse

    parser = argparse.ArgumentParser(prog="python tests/slurm_cluster.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("dir", help="the cluster's directory (configuration, state, logs, PIDs)")
    parser.add_argument("--cpus", type=int, help="CPUs the node claims (default: this machine's)")
    parser.add_argument("--memory-mb", type=int, help="memory the node claims (default: 95%% of this machine's)")
    parser.add_argument("--gpus", type=int, default=0, choices=(0, 1), help="a fake GPU (/dev/null) for --gpus jobs")
    args = parser.parse_args(argv)
    cluster = Cluster(args.dir, cpus=args.cpus, memory_mb=args.memory_mb, gpus=args.gpus)
    try:
        if args.action == "up":
            cluster.up()
            print(f"installed in {cluster.install_s:.1f} s; " if cluster.install_s else "", end="")
            print(f"cluster up in {cluster.start_s:.1f} s (node idle)\n"
                  f"export SLURM_CONF={cluster.conf} PATH={cluster.bin}:$PATH")
        elif args.action == "down":
            killed = cluster.down()
            print("stopped" + (f" (killed: {', '.join(killed)})" if killed else ""))
        else:
            print(cluster.status())
    except ClusterError as e:
        print(f"slurm_cluster: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
