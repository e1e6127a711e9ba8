"""The ``nas.py`` Hydra app: one architecture search per job (docs/nas.md). Writes into the job directory:
``metrics.csv`` (every logged step: losses, alpha, A, hypergradient norms, softmax(gamma) and entropy of every
edge), ``summary.json`` (status ok / diverged / failed, times, accuracies, genotype, findings),
``genotype.yaml``, ``robustness.json``, ``checkpoints/{supernet,discrete}.pt``, ``dynamics.png``,
``entropy.png``, ``robustness_{weights,inputs}.png`` and, with ``logger=wandb``, an (offline) W&B run.

A job's lifecycle (skip a finished search, refuse another run's directory, record failures, close the loggers)
is every job's (:class:`lossland.job.Job`); the search and the discrete network train in the one training loop
(:class:`lossland.loop.Trainer`)."""

from __future__ import annotations

import logging
import math
import time

import torch
from omegaconf import DictConfig, OmegaConf

from lossland.build import build_loggers, instantiate_node
from lossland.config import output_dir
from lossland.data import TensorDataModule
from lossland.errors import LosslandError
from lossland.job import Job
from lossland.loop import Trainer
from lossland.models.darts import GenotypeNet, check_ops
from lossland.records import atomic_torch_save, atomic_write, write_json
from lossland.runs import Run
from lossland.seeding import generator, stream_seed
from lossland.studies.nas import plots
from lossland.studies.nas.prior import DirichletPrior
from lossland.studies.nas.robustness import noise_curve, train_discrete
from lossland.studies.nas.search import SearchModule, SearchRecord, accuracy
from lossland.studies.nas.supernet import Supernet

log = logging.getLogger("lossland.studies.nas")
# The search's final metrics (``summary.json``'s ``final``, ``final/*`` in its W&B run): the supernet's accuracy,
# the argmax architecture's with the supernet's weights, and the discrete network's trained from scratch.
FINAL = ("test_acc", "inherited_discrete_test_acc", "discrete_test_acc")


def validate(cfg: DictConfig, recipe: str | None = None) -> None:
    """Refuse a bad job before any job of a sweep starts: one line each."""
    check_ops(list(cfg.nas.ops))
    build_prior(cfg)
    if not int(cfg.data.get("val_size") or 0) > 0:
        raise LosslandError("the search needs a validation split for Gamma and A: data.val_size is "
                            f"{cfg.data.get('val_size')}; set data.val_size=<n> > 0")
    if int(cfg.search.epochs) < 1:
        raise LosslandError(f"search.epochs must be >= 1, got {cfg.search.epochs}")


def build_prior(cfg: DictConfig) -> DirichletPrior:
    return instantiate_node(cfg.prior, "prior")


def run_search(cfg: DictConfig) -> dict:
    """One search job; returns its summary. User errors and signals raise (after the record is written)."""
    validate(cfg)
    job = Job(cfg, output_dir(cfg))
    if job.open() == "skip":
        return job.summary
    prior = build_prior(cfg)
    job.start(app="nas", prior=prior.name)
    with job.recording():
        search_job(cfg, job, prior)
    s = job.summary
    print(f"lossland nas: prior={prior.name} {s['status']} in {s['wall_s']:.1f} s; "
          f"test acc supernet {s.get('test_acc', float('nan')):.4f}, "
          f"discrete {s.get('discrete_test_acc', float('nan')):.4f}; {job.out / 'genotype.yaml'}")
    return s


def search_job(cfg: DictConfig, job: Job, prior: DirichletPrior) -> None:
    """The steps of a job: the search; then (unless it diverged) the genotype and the supernet's accuracies, the
    discrete network trained from scratch, accuracy under noise, the findings and the figures."""
    torch.manual_seed(stream_seed(cfg.seed, "init"))
    dm = instantiate_node(cfg.data, "data", seed=cfg.seed).prepare()
    splits = {k: (x.to(str(cfg.device)), y.to(str(cfg.device))) for k, (x, y) in dm.splits.items()}
    if "val" not in splits or len(splits["val"][0]) == 0:
        raise LosslandError("the search needs a validation split for Gamma and A: data.val_size is 0; "
                            "set data.val_size=<n> > 0")
    n = cfg.nas
    model = Supernet(dm.input_shape, dm.num_classes, list(n.ops), n.channels, n.cells, n.nodes,
                     None if n.reductions is None else list(n.reductions), n.stem_multiplier, n.gamma_init)
    ckpt = job.checkpoint  # a killed search resumes from its newest checkpoint, its records up to that step
    rows = None if ckpt is None else [r for r in Run(job.out).rows() if r["step"] <= ckpt["global_step"]]
    loggers = build_loggers(cfg, job.out, rows=rows)
    job.attach(loggers=loggers)
    history = search(cfg, job, model, splits, prior, loggers)
    if job.summary["status"] != "ok":  # diverged: the records so far, no genotype / robustness
        return
    x_eval, y_eval = splits.get("test", splits["val"])
    genotype = record_supernet(job, model, history, x_eval, y_eval)
    net = train_discrete_net(cfg, job, genotype, dm, splits, x_eval, y_eval)
    curves = robustness(cfg, job, prior, model, net, x_eval, y_eval)
    job.summary["findings"] = findings(history, len(model.op_names), cfg)
    job.summary["final"] = {k: job.summary[k] for k in FINAL}  # full passes over the test (else val) split
    draw_figures(job, prior, history, model.op_names, curves)
    for lg in loggers[1:]:
        lg.log_metrics({"test_acc_final": job.summary["test_acc"],
                        "discrete_test_acc": job.summary["discrete_test_acc"]}, job.summary["steps"])


def _accelerator(device) -> str:
    return "cuda" if str(device).startswith("cuda") else "cpu"


def search(cfg: DictConfig, job: Job, model: Supernet, splits: dict, prior: DirichletPrior, loggers) -> list[dict]:
    """The bilevel search in the training loop (:class:`SearchModule` steps, :class:`SearchRecord` rows);
    records status, steps, epochs, time and A in the summary; returns the history of logged rows."""
    s = cfg.search
    dm = TensorDataModule(batch_size=int(s.batch_size), seed=int(cfg.seed))
    dm.splits = {"train": splits["train"]}
    module = SearchModule(model, splits["val"], s, prior, dm.steps_per_epoch, dm.order_generator)
    record = SearchRecord(loggers, dm.steps_per_epoch, int(s.epochs), int(s.log_every), splits.get("test"))
    trainer = SearchTrainer(loggers, accelerator=_accelerator(cfg.device), max_epochs=int(s.epochs),
                            enable_progress_bar=False, log_every_n_steps=int(s.log_every), callbacks=[record],
                            gradient_clip_val=None if s.get("grad_clip") is None else float(s.grad_clip),
                            checkpoint_dir=job.out / "checkpoints", run_info={"run_id": job.run_id})
    job.attach(trainer, loggers)
    t0 = time.perf_counter()
    trainer.fit(module, dm, resume=job.checkpoint)
    job.end_training(trainer)
    job.summary.update(search_wall_s=time.perf_counter() - t0, log_decay=module.log_decay.item())
    return record.history


class SearchTrainer(Trainer):
    """The loop's trainer for the search: its rows are the search's own (:class:`SearchRecord` sends them to the
    job's loggers), so the loggers are not sent the loop's batch means, but are flushed with every checkpoint
    (``last.ckpt`` at every logged step: a killed search resumes from there, bit-identical)."""

    def __init__(self, records: list, **kwargs):
        super().__init__(**kwargs)
        self.records = records

    def flush(self) -> None:
        for lg in self.records:
            if hasattr(lg, "save"):
                lg.save()


def record_supernet(job: Job, model: Supernet, history: list[dict], x_eval, y_eval) -> dict:
    """``genotype.yaml`` (every edge's argmax), ``checkpoints/supernet.pt``, the supernet's accuracies and the
    argmax architecture's with the supernet's weights (no retraining); returns the genotype."""
    genotype = model.genotype()
    atomic_write(job.out / "genotype.yaml", OmegaConf.to_yaml(OmegaConf.create(genotype)))
    atomic_torch_save({"state_dict": model.state_dict(), "log_decay": job.summary["log_decay"],
                       "genotype": genotype, "op_names": model.op_names}, job.out / "checkpoints" / "supernet.pt")
    last = history[-1]
    job.summary.update(val_acc=last.get("val_acc"), test_acc=accuracy(model, x_eval, y_eval), genotype=genotype,
                       final_entropy_mean=last["entropy_mean"], final_max_prob_mean=last["max_prob_mean"],
                       log_k=math.log(len(model.op_names)))
    model.fixed_weights = model.one_hot()
    job.summary["inherited_discrete_test_acc"] = accuracy(model, x_eval, y_eval)
    model.fixed_weights = None
    return genotype


def train_discrete_net(cfg: DictConfig, job: Job, genotype: dict, dm, splits: dict, x_eval, y_eval):
    """The discrete architecture trained from scratch (``discrete.*``; on train + validation with
    ``discrete.train_on_val``): its accuracy, time, losses, size and ``checkpoints/discrete.pt``."""
    d = cfg.discrete
    torch.manual_seed(stream_seed(cfg.seed, "init"))
    net = GenotypeNet(dm.input_shape, dm.num_classes, genotype, channels=d.get("channels")).to(str(cfg.device))
    parts = [splits["train"], splits["val"]] if d.train_on_val else [splits["train"]]
    train = torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])
    t0 = time.perf_counter()
    losses = train_discrete(net, train, int(d.epochs), float(d.lr), int(d.batch_size), int(cfg.seed))
    job.summary.update(discrete_test_acc=accuracy(net, x_eval, y_eval), discrete_wall_s=time.perf_counter() - t0,
                       discrete_losses=losses, discrete_params=sum(p.numel() for p in net.parameters()))
    atomic_torch_save({"state_dict": net.state_dict(), "genotype": genotype}, job.out / "checkpoints" / "discrete.pt")
    return net


def robustness(cfg: DictConfig, job: Job, prior: DirichletPrior, model: Supernet, net, x_eval, y_eval) -> dict:
    """Accuracy under Gaussian noise on the weights (not Gamma) and on the inputs, supernet and discrete network
    (the ``noise`` stream): ``robustness.json``; returns the curves."""
    r = cfg.robustness
    g = generator(cfg.seed, "noise", "cpu")
    arch = {id(p) for p in model.arch_parameters()}
    t0 = time.perf_counter()
    curves = {name: {where: noise_curve(m, x_eval, y_eval, list(r[f"{where}_sigmas"]), int(r.draws), where, g, skip)
                     for where in ("weights", "inputs")}
              for name, m, skip in (("supernet", model, arch), ("discrete", net, None))}
    job.summary["robustness_wall_s"] = time.perf_counter() - t0
    write_json(job.out / "robustness.json", {"prior": prior.name, "draws": int(r.draws), **curves})
    return curves


def draw_figures(job: Job, prior: DirichletPrior, history: list[dict], op_names: list[str], curves: dict) -> None:
    out = job.out
    plots.dynamics_figure(history, op_names, f"structure dynamics, prior={prior.name}", out / "dynamics.png")
    plots.entropy_figure({prior.name: history}, len(op_names), out / "entropy.png")
    for where in ("weights", "inputs"):
        plots.robustness_figure({prior.name: curves}, where, out / f"robustness_{where}.png")


def findings(hist: list[dict], n_ops: int, cfg) -> dict:
    """The seed's two findings as measurements (docs/nas.md).

    degenerate: every edge's mixture is (near) one-hot at the end: final max entropy <= ``entropy_tol`` * log K.

    stalled: the structure stopped moving because the data no longer drives it. The hypergradient of Q splits
    into the prior's part (closed form, lambda (1 - alpha)(1 - K p)) and the validation-CE part (the rest,
    ``ce_grad_norm``). Measured: the mean CE part over the last quarter of the logged steps relative to the
    first quarter (``ce_grad_ratio``) and the largest change of any softmax(gamma) entry over the last quarter
    (``mix_move_last_quarter``); stalled when both are below ``findings.grad_ratio_tol`` / ``findings.move_tol``.
    Per edge (:func:`edge_findings`): undecided (final entropy >= ``findings.undecided_frac`` * log K), and the
    same stall test on the edge's CE part relative to the early median edge's.

    stalled is not "at a stationary point": an edge frozen at a vertex has a vanishing data part because softmax
    saturates, while the prior's part stays at lambda (1 - alpha) sqrt(K (K - 1)) (``vertex_prior_grad``). An
    edge is *stationary* when its whole dQ/dgamma (data + prior) over the last quarter is below
    ``findings.grad_ratio_tol`` x the early median edge's, it does not move, and it is not at a vertex (entropy
    above ``findings.entropy_tol`` * log K); *saturated* when it is at a vertex, does not move, and its whole
    gradient is not small (``prior_grad_per_edge_last_quarter``: the prior's part, root mean square per edge)."""
    f = cfg.findings
    log_k = math.log(n_ops)
    final_ent = [v for k, v in hist[-1].items() if k.startswith("entropy/")]
    rows = [r for r in hist if "gamma_grad_norm" in r]
    q = max(1, len(rows) // 4)
    ce_first, ce_last = _mean(rows[:q], "ce_grad_norm"), _mean(rows[-q:], "ce_grad_norm")
    ce_ratio = ce_last / ce_first if ce_first > 0 else float("nan")
    total_move = _move(rows[-q:], [k for k in hist[-1] if k.startswith("mix/")])
    med, per_edge = edge_findings(hist, rows, q, f, log_k)
    alpha_end, lam = hist[-1].get("alpha", float("nan")), float(cfg.prior.strength)
    return {"final_entropy_max": max(final_ent), "final_entropy_mean": sum(final_ent) / len(final_ent),
            "log_k": log_k, "degenerate": bool(max(final_ent) <= float(f.entropy_tol) * log_k),
            "grad_norm_first_quarter": _mean(rows[:q], "gamma_grad_norm"),
            "grad_norm_last_quarter": _mean(rows[-q:], "gamma_grad_norm"),
            "prior_grad_norm_last_quarter": _mean(rows[-q:], "prior_grad_norm"),
            "ce_grad_norm_first_quarter": ce_first, "ce_grad_norm_last_quarter": ce_last, "ce_grad_ratio": ce_ratio,
            "mix_move_last_quarter": total_move,
            "stalled": bool(ce_ratio < float(f.grad_ratio_tol) and total_move < float(f.move_tol)),
            "early_median_edge_ce_grad": med, "undecided_edges": sum(v["undecided"] for v in per_edge.values()),
            "stalled_edges": sum(v["stalled"] for v in per_edge.values()),
            "stalled_undecided_edges": sum(v["stalled"] and v["undecided"] for v in per_edge.values()),
            "stationary_edges": sum(v["stationary"] for v in per_edge.values()),
            "stationary_undecided_edges": sum(v["stationary"] and v["undecided"] for v in per_edge.values()),
            "saturated_edges": sum(v["saturated"] for v in per_edge.values()),
            "prior_grad_per_edge_last_quarter": _mean(rows[-q:], "prior_grad_norm") / math.sqrt(len(per_edge)),
            "vertex_prior_grad": lam * (1 - alpha_end) * math.sqrt(n_ops * (n_ops - 1)),
            "early_median_edge_grad": _median(rows[:q], [f"grad/{e}" for e in per_edge]),
            "edges": per_edge}


def edge_findings(hist: list[dict], rows: list[dict], q: int, f, log_k: float) -> tuple[float, dict]:
    """(the early median edge's CE part, ``{edge: entropy, late CE part, late gradient, move over the last
    quarter, undecided, stalled, stationary, saturated}``)."""
    edges = [k.removeprefix("entropy/") for k in hist[-1] if k.startswith("entropy/")]
    med = _median(rows[:q], [f"cegrad/{e}" for e in edges])
    med_all = _median(rows[:q], [f"grad/{e}" for e in edges])
    mix_keys = [k for k in hist[-1] if k.startswith("mix/")]
    per_edge = {}
    for e in edges:
        late = _mean(rows[-q:], f"cegrad/{e}")
        moved = _move(rows[-q:], [k for k in mix_keys if k.startswith(f"mix/{e}/")])
        ent, late_all = hist[-1][f"entropy/{e}"], _mean(rows[-q:], f"grad/{e}")
        still, at_vertex = moved < float(f.move_tol), ent <= float(f.entropy_tol) * log_k
        small = late_all < float(f.grad_ratio_tol) * med_all
        per_edge[e] = {"entropy": ent, "late_ce_grad": late, "late_grad": late_all, "move_last_quarter": moved,
                       "undecided": bool(ent >= float(f.undecided_frac) * log_k),
                       "stalled": bool(late < float(f.grad_ratio_tol) * med and still),
                       "stationary": bool(small and still and not at_vertex),
                       "saturated": bool(at_vertex and still and not small)}
    return med, per_edge


def _median(rows: list[dict], keys: list[str]) -> float:
    """The median over ``keys`` of each key's mean over ``rows``."""
    v = sorted(_mean(rows, k) for k in keys)
    return v[len(v) // 2]


def _mean(rows: list[dict], key: str) -> float:
    return sum(r.get(key, float("nan")) for r in rows) / len(rows)


def _move(rows: list[dict], keys: list[str]) -> float:
    """The largest range of any of ``keys`` over ``rows``."""
    return max(max(r[k] for r in rows) - min(r[k] for r in rows) for k in keys)
