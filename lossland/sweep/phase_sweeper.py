"""The phase-boundary sweeper (``hydra/sweeper=phase_boundary``, docs/phase_boundary.md): a Hydra Sweeper that
runs rounds of jobs through the configured launcher (basic, joblib, submitit, Ray: one batch per round) and
narrows each asked boundary's bracket on the rate lattice (:mod:`lossland.sweep.boundary`) until it is within
the resolution. Each job is an ordinary run in the sweep directory; its phase is read from its record by the
``label`` callable of the config (a study's rule: the sweep layer knows no study). ``boundaries.json`` is
rewritten after every round. Re-running the same command resumes: the jobs get the same numbers, a round whose
runs all finished is read back without launching, and a launched job that already finished is skipped by the
job lifecycle (:mod:`lossland.job`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from hydra.plugins.sweeper import Sweeper
from omegaconf import DictConfig, OmegaConf

from lossland.errors import LosslandError
from lossland.records import write_json
from lossland.runs import Run
from lossland.sweep.boundary import (
    PHASES,
    Bracket,
    Lattice,
    bracket,
    check_settings,
    coarse_indices,
    majority,
    next_round,
    parse_boundary,
    side,
)

log = logging.getLogger("lossland")
BOUNDARIES_JSON = "boundaries.json"
FINISHED = ("ok", "diverged")


class PhaseBoundary(Sweeper):
    """Hydra Sweeper; its keyword arguments are ``conf/hydra/sweeper/phase_boundary.yaml``'s keys."""

    def __init__(self, rate: str = "elr", range: Sequence[float] = (1e-5, 1.0),  # noqa: A002 (the config key)
                 boundaries: Sequence[str] = ("1|2", "2|3"), resolution: float = 1.2, k: int = 3, coarse: int = 9,
                 early_stop: bool = True, label: Callable | DictConfig | None = None,
                 order: Sequence[str] = PHASES, max_rounds: int = 30):
        self.rate, self.range, self.names = str(rate), list(range or []), list(boundaries or [])
        self.resolution, self.k, self.coarse, self.early_stop = resolution, k, coarse, bool(early_stop)
        self.label, self.order, self.max_rounds = label, tuple(order), int(max_rounds)
        self.config: DictConfig | None = None
        self.launcher = self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config: DictConfig) -> None:
        from hydra.core.plugins import Plugins

        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context,
                                                                task_function=task_function, config=config)

    # ------------------------------------------------------------------------------------------ checks
    def check(self, arguments: Sequence[str]) -> tuple[Lattice, list, list[list[str]]]:
        """The lattice, the boundaries and the replicates (the command line's other sweeps, e.g. seeds), or one
        line for bad input: before any job runs."""
        if len(self.range) != 2:
            raise LosslandError(f"range={self.range} is not valid: [low, high], two positive numbers")
        check_settings(self.range[0], self.range[1], self.resolution, self.k, self.coarse)
        if not self.names:
            raise LosslandError("boundaries=[] is not valid: name at least one boundary, e.g. [1|2,2|3]")
        bounds = [parse_boundary(n, self.order) for n in self.names]
        optimizer = OmegaConf.select(self.config, "optimizer", default=None)
        if self.rate not in ("elr", "lr") or not isinstance(optimizer, DictConfig) or self.rate not in optimizer:
            rates = [r for r in ("elr", "lr") if isinstance(optimizer, DictConfig) and r in optimizer]
            target = OmegaConf.select(self.config, "optimizer._target_", default="none")
            raise LosslandError(f"rate={self.rate} is not a rate of the optimizer ({target}); its rates: "
                                f"{', '.join(rates) or 'none'}")
        replicates = self._replicates(arguments)
        if any(o.split("=", 1)[0].lstrip("+~") == self.rate for o in replicates[0]):
            raise LosslandError(f"{self.rate} is the sweeper's (hydra.sweeper.range); remove {self.rate}=... "
                                "from the command line")
        return Lattice(float(self.range[0]), float(self.range[1]), float(self.resolution)), bounds, replicates

    def _replicates(self, arguments: Sequence[str]) -> list[list[str]]:
        from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
        from hydra.core.override_parser.overrides_parser import OverridesParser

        loader = getattr(self.hydra_context, "config_loader", None)  # (None: no glob choice sweeps)
        parser = OverridesParser.create(config_loader=loader)
        return BasicSweeper.split_arguments(parser.parse_overrides(list(arguments)), None)[0]

    def _validate(self, batch: list[list[str]]) -> None:
        """Each job's config, composed as the launcher will, checked by lossland's schema (:mod:`lossland.schema`,
        as ``lossland train`` checks every job of a sweep before the first trains)."""
        from lossland.schema import validate

        loader = self.hydra_context.config_loader
        for overrides in batch:
            cfg = loader.load_sweep_config(master_config=self.config, sweep_overrides=list(overrides))
            recipe = next((o.split("=", 1)[1] for o in overrides if o.startswith("experiment=")), None)
            with_hydra = OmegaConf.to_container(cfg, resolve=False)
            with_hydra.pop("hydra", None)
            validate(OmegaConf.create(with_hydra), recipe)

    # ------------------------------------------------------------------------------------------ sweep
    def sweep(self, arguments: list[str]) -> list:
        lattice, bounds, replicates = self.check(arguments)
        label = self.label
        if isinstance(label, DictConfig):
            from hydra.utils import instantiate

            label = instantiate(label)
        if not callable(label):
            raise LosslandError("hydra.sweeper.label must be a callable of a run (a _target_ with _partial_: true)")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        self._check_previous(sweep_dir / BOUNDARIES_JSON)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        state = SearchState(lattice, bounds, self.order, len(replicates))
        todo, returns, next_idx = [(j, rep) for j in coarse_indices(lattice.n, self.coarse) for rep in replicates], \
            [], 0
        confirm = False
        while todo and state.rounds < self.max_rounds:
            batch = [[*rep, f"{self.rate}={lattice.rate(j)}", *([] if confirm else self._extra())] for j, rep in todo]
            dirs = [sweep_dir / str(next_idx + i) for i in range(len(batch))]
            if all(_finished(d, o) for d, o in zip(dirs, batch)):
                log.info("phase_boundary: round %d read back (%d runs)", state.rounds + 1, len(batch))
            else:
                self._validate(batch)
                log.info("phase_boundary: round %d%s, %s=%s", state.rounds + 1,
                         " (deciding runs stopped early, again at full length)" if confirm else "", self.rate,
                         ",".join(dict.fromkeys(f"{lattice.rate(j):g}" for j, _ in todo)))
                returns.append(self.launcher.launch(batch, initial_job_idx=next_idx))
            summaries = [_summary(d) for d in dirs]
            state.add_round([(j, tuple(rep), str(d), _label(label, d), bool(sm.get("stopped_early")))
                             for (j, rep), d, sm in zip(todo, dirs, summaries)],
                            [int(sm.get("steps") or 0) for sm in summaries], confirm)
            next_idx += len(batch)
            write_json(sweep_dir / BOUNDARIES_JSON, state.record(self.rate, self._settings(), sweep_dir))
            todo, confirm = state.next_round(self.k, [tuple(r) for r in replicates])
        result = state.record(self.rate, self._settings(), sweep_dir)
        write_json(sweep_dir / BOUNDARIES_JSON, result)
        for name, b in result["boundaries"].items():
            log.info("phase_boundary: %s in %s (%s)", name, b["bracket"], b["status"])
        return returns

    def _check_previous(self, path: Path) -> None:
        """A sweep directory that holds another search (other settings: other rates at the same job numbers) is
        refused unless ``overwrite=true`` (whose jobs then replace the runs they meet)."""
        if not path.is_file() or OmegaConf.select(self.config, "overwrite", default=False):
            return
        try:
            old = json.loads(path.read_text()).get("settings")
        except (OSError, ValueError, AttributeError) as e:
            raise LosslandError(f"{path}: unreadable ({e}); choose another hydra.sweep.dir") from None
        if old != self._settings():
            changed = sorted(k for k in self._settings() if (old or {}).get(k) != self._settings()[k])
            raise LosslandError(f"{path.parent} holds another phase-boundary search (hydra.sweeper "
                                f"{', '.join(changed)} differ); choose another hydra.sweep.dir or pass overwrite=true")

    def _extra(self) -> list[str]:
        return ["metrics.early_stop.phase=true"] if self.early_stop else []

    def _settings(self) -> dict:
        return {"rate": self.rate, "range": [float(x) for x in self.range], "boundaries": self.names,
                "resolution": float(self.resolution), "k": self.k, "coarse": self.coarse,
                "early_stop": self.early_stop, "order": list(self.order)}


def _finished(d: Path, overrides: list[str]) -> bool:
    """Does ``d`` hold this job's finished run (the same overrides, status ok or diverged)?"""
    try:
        s = Run(d).summary
    except Exception:  # noqa: BLE001 (no record, or an unreadable one: the job runs)
        return False
    return s.get("status") in FINISHED and list(s.get("overrides") or []) == list(overrides)


def _label(label: Callable, d: Path) -> str | None:
    if not (d / "summary.json").exists():
        return None
    try:
        return label(Run(d))
    except (LosslandError, OSError, ValueError, KeyError, TypeError) as e:
        log.warning("phase_boundary: %s: no label (%s)", d, e)
        return None


def _summary(d: Path) -> dict:
    try:
        return dict(Run(d).summary)
    except Exception:  # noqa: BLE001 (a run without a readable record: no steps, not stopped)
        return {}


class SearchState:
    """The runs so far ({lattice index: {replicate: (run dir, label, stopped early)}}), each boundary's bracket,
    the rounds. A run that stopped early at a bracket's end is run again at full length (a confirmation round)
    and its label replaced: the brackets rest on full-length runs, as the dense grid's do."""

    def __init__(self, lattice: Lattice, bounds: list, order: Sequence[str], replicates: int):
        self.lattice, self.bounds, self.order, self.replicates = lattice, bounds, tuple(order), replicates
        self.runs: dict[int, dict[tuple, tuple[str, str | None, bool]]] = {}
        self.superseded: list[dict] = []
        self.rounds_log: list[dict] = []
        self.steps = 0

    @property
    def rounds(self) -> int:
        return len(self.rounds_log)

    def add_round(self, jobs: list[tuple[int, tuple, str, str | None, bool]], steps: list[int],
                  confirm: bool = False) -> None:
        for j, rep, d, lab, stopped in jobs:
            old = self.runs.setdefault(j, {}).get(rep)
            if old is not None:
                self.superseded.append({"rate": self.lattice.rate(j), "run": old[0], "label": old[1],
                                        "full_length_run": d, "full_length_label": lab})
            self.runs[j][rep] = (d, lab, stopped)
        self.steps += sum(steps)
        self.rounds_log.append({"round": self.rounds + 1, "rates": sorted({self.lattice.rate(j) for j, *_ in jobs}),
                                "runs": len(jobs), "steps": sum(steps), "confirmation": confirm})

    def labels(self, j: int) -> list[str | None]:
        return [lab for _, lab, _ in self.runs[j].values()]

    def sides(self, b) -> dict[int, str | None]:
        return {j: majority(self.labels(j), b, self.order) for j in self.runs}

    def brackets(self) -> list[Bracket]:
        return [bracket(self.sides(b)) for b in self.bounds]

    def next_round(self, k: int, replicates: Sequence[tuple] = ()) -> tuple[list[tuple[int, tuple]], bool]:
        """The jobs of the next round, (lattice index, replicate), and whether it is a confirmation round."""
        todo = next_round(self.brackets(), k, set(self.runs))
        if todo:
            return [(j, rep) for j in todo for rep in replicates], False
        ends = sorted({j for b in self.brackets() for j in (b.lo, b.hi) if j is not None})
        return [(j, rep) for j in ends for rep, (_, _, stopped) in self.runs[j].items() if stopped], True

    def record(self, rate: str, settings: dict, root: Path) -> dict:
        """``boundaries.json``: per boundary its bracket, status, deciding runs and seed disagreements."""
        def rel(d: str) -> str:
            return Path(d).relative_to(root).as_posix() if Path(d).is_relative_to(root) else d

        out = {"settings": settings, "lattice": {"points": self.lattice.n + 1, "factor": self.lattice.factor},
               "runs": sum(r["runs"] for r in self.rounds_log), "steps": self.steps,
               "dense_grid_runs": (self.lattice.n + 1) * self.replicates, "rounds": self.rounds_log,
               "boundaries": {}}
        pending = bool(next_round(self.brackets(), 1, set(self.runs)))
        for b, br in zip(self.bounds, self.brackets()):
            lo = None if br.lo is None else self.lattice.rate(br.lo)
            hi = None if br.hi is None else self.lattice.rate(br.hi)
            status = ("below the range" if br.lo is None and br.hi is not None else
                      "above the range" if br.hi is None and br.lo is not None else
                      "no decided run" if br.lo is None else
                      "resolved" if br.hi - br.lo <= 1 else "searching" if pending else "unresolved")
            deciding = [{"run": rel(d), rate: self.lattice.rate(j), "label": lab, "stopped_early": stopped}
                        for j in (br.lo, br.hi) if j is not None for d, lab, stopped in self.runs[j].values()]
            disagree = []
            for j in sorted(self.runs):
                votes = {rel(d): lab for d, lab, _ in self.runs[j].values()}
                if len({side(lab, b, self.order) for lab in votes.values()}) > 1:
                    disagree.append({rate: self.lattice.rate(j), "labels": votes,
                                     "majority": majority(list(votes.values()), b, self.order)})
            out["boundaries"][b.name] = {
                "bracket": [lo, hi], "status": status,
                "ratio": None if lo is None or hi is None else hi / lo,
                "deciding_runs": deciding, "disagreements": disagree,
                "non_monotone": [self.lattice.rate(j) for j in br.non_monotone]}
        out["labels"] = {f"{self.lattice.rate(j):g}": self.labels(j) for j in sorted(self.runs)}
        out["superseded"] = [{**x, "run": rel(x["run"]), "full_length_run": rel(x["full_length_run"])}
                             for x in self.superseded]
        return out
