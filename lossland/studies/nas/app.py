"""The ``nas.py`` Hydra app: one architecture search per job (docs/nas.md). Writes into the job directory:
``metrics.csv`` (every logged step: losses, alpha, A, hypergradient norms, softmax(gamma) and entropy of every
edge), ``summary.json`` (status ok / diverged / failed, times, accuracies, genotype, findings),
``genotype.yaml``, ``robustness.json``, ``checkpoints/{supernet,discrete}.pt``, ``dynamics.png``,
``entropy.png``, ``robustness_{weights,inputs}.png`` and, with ``logger=wandb``, an (offline) W&B run."""

from __future__ import annotations

import logging
import math
import time

import torch
from omegaconf import DictConfig, OmegaConf

from lossland.config import output_dir
from lossland.errors import LosslandError
from lossland.records import atomic_torch_save, atomic_write, write_json

log = logging.getLogger("lossland.studies.nas")


def validate(cfg: DictConfig, recipe: str | None = None) -> None:
    """Refuse a bad job before any job of a sweep starts: one line each."""
    from lossland.studies.nas.ops import check_ops
    from lossland.studies.nas.prior import check_alpha

    check_ops(list(cfg.nas.ops))
    check_alpha(cfg.prior.alpha, "prior.alpha")
    if cfg.prior.get("alpha_end") is not None:
        check_alpha(cfg.prior.alpha_end, "prior.alpha_end")
    if not float(cfg.prior.strength) >= 0:
        raise LosslandError(f"prior.strength (lambda) must be >= 0, got {cfg.prior.strength}")
    if not int(cfg.data.get("val_size") or 0) > 0:
        raise LosslandError("the search needs a validation split for Gamma and A: data.val_size is "
                            f"{cfg.data.get('val_size')}; set data.val_size=<n> > 0")
    if int(cfg.search.epochs) < 1:
        raise LosslandError(f"search.epochs must be >= 1, got {cfg.search.epochs}")


def _build_data(cfg):
    from lossland.build import instantiate_node

    dm = instantiate_node(cfg.data, "data", seed=cfg.seed)
    dm.prepare()
    return dm


def run_search(cfg: DictConfig) -> dict:
    from lossland.job import Job

    validate(cfg)
    job = Job(cfg, output_dir(cfg))
    if job.open() == "skip":
        return job.summary
    job.start(app="nas", prior=cfg.prior.name)
    with job.recording():
        _search(cfg, job)
    print(f"lossland nas: prior={cfg.prior.name} {job.summary['status']} in {job.summary['wall_s']:.1f} s; "
          f"test acc supernet {job.summary.get('test_acc', float('nan')):.4f}, "
          f"discrete {job.summary.get('discrete_test_acc', float('nan')):.4f}; {job.out / 'genotype.yaml'}")
    return job.summary


def _search(cfg, job):
    from lossland.build import build_loggers
    from lossland.models.darts import GenotypeNet
    from lossland.seeding import generator, stream_seed
    from lossland.studies.nas import plots
    from lossland.studies.nas.robustness import noise_curve, train_discrete
    from lossland.studies.nas.search import Search, accuracy
    from lossland.studies.nas.supernet import Supernet

    out, summary = job.out, job.summary
    device = str(cfg.device)
    torch.manual_seed(stream_seed(cfg.seed, "init"))
    dm = _build_data(cfg)
    splits = {k: (x.to(device), y.to(device)) for k, (x, y) in dm.splits.items()}
    if "val" not in splits or len(splits["val"][0]) == 0:
        raise LosslandError("the search needs a validation split for Gamma and A: data.val_size is 0; "
                            "set data.val_size=<n> > 0")
    n = cfg.nas
    model = Supernet(dm.input_shape, dm.num_classes, list(n.ops), n.channels, n.cells, n.nodes,
                     None if n.reductions is None else list(n.reductions), n.stem_multiplier, n.gamma_init)
    loggers = build_loggers(cfg, out)
    job.attach(loggers=loggers)

    def log_metrics(metrics, step):
        for lg in loggers:
            lg.log_metrics(metrics, step)

    if True:  # (replaced by the steps below)
        search = Search(model, splits, cfg.search, cfg.prior, seed=stream_seed(cfg.seed, "data"), device=device)
        summary.update(search.run(log_metrics))
        loggers[0].save()
        hist = search.history
        if summary["status"] != "ok":  # diverged: the records so far, no genotype / robustness
            return
        genotype = model.genotype()
        atomic_write(out / "genotype.yaml", OmegaConf.to_yaml(OmegaConf.create(genotype)))
        atomic_torch_save({"state_dict": model.state_dict(), "log_decay": summary["log_decay"],
                           "genotype": genotype, "op_names": model.op_names}, out / "checkpoints" / "supernet.pt")
        test = splits.get("test")
        x_eval, y_eval = test if test is not None else splits["val"]
        last = hist[-1]
        summary.update(val_acc=last.get("val_acc"), test_acc=accuracy(model, x_eval, y_eval),
                       genotype=genotype, final_entropy_mean=last["entropy_mean"],
                       final_max_prob_mean=last["max_prob_mean"], log_k=math.log(len(model.op_names)))
        # the argmax architecture with the supernet's weights (no retraining)
        model.fixed_weights = model.one_hot()
        summary["inherited_discrete_test_acc"] = accuracy(model, x_eval, y_eval)
        model.fixed_weights = None
        # the discrete architecture, trained from scratch
        d = cfg.discrete
        torch.manual_seed(stream_seed(cfg.seed, "init"))
        net = GenotypeNet(dm.input_shape, dm.num_classes, genotype, channels=d.get("channels")).to(device)
        train_x = torch.cat([splits["train"][0], splits["val"][0]]) if d.train_on_val else splits["train"][0]
        train_y = torch.cat([splits["train"][1], splits["val"][1]]) if d.train_on_val else splits["train"][1]
        t1 = time.perf_counter()
        dres = train_discrete(net, (train_x, train_y), int(d.epochs), float(d.lr), int(d.batch_size),
                              stream_seed(cfg.seed, "data"))
        summary.update(discrete_test_acc=accuracy(net, x_eval, y_eval), discrete_wall_s=time.perf_counter() - t1,
                       discrete_losses=dres["losses"], discrete_params=sum(p.numel() for p in net.parameters()))
        atomic_torch_save({"state_dict": net.state_dict(), "genotype": genotype}, out / "checkpoints" / "discrete.pt")
        # robustness
        r = cfg.robustness
        g = generator(cfg.seed, "noise", "cpu")
        skip = {id(p) for p in model.arch_parameters()}
        curves = {}
        t2 = time.perf_counter()
        for name, m, sk in (("supernet", model, skip), ("discrete", net, None)):
            curves[name] = {where: noise_curve(m, x_eval, y_eval, list(r[f"{where}_sigmas"]), int(r.draws), where, g,
                                               sk) for where in ("weights", "inputs")}
        summary["robustness_wall_s"] = time.perf_counter() - t2
        write_json(out / "robustness.json", {"prior": cfg.prior.name, "draws": int(r.draws), **curves})
        # findings (docs/nas.md): degeneration to a discrete structure, stalling at stationary points
        summary["findings"] = findings(hist, len(model.op_names), cfg)
        plots.dynamics_figure(hist, model.op_names, f"structure dynamics, prior={cfg.prior.name}",
                              out / "dynamics.png")
        plots.entropy_figure({cfg.prior.name: hist}, len(model.op_names), out / "entropy.png")
        for where in ("weights", "inputs"):
            plots.robustness_figure({cfg.prior.name: curves}, where, out / f"robustness_{where}.png")
        for lg in loggers[1:]:
            lg.log_metrics({"test_acc_final": summary["test_acc"], "discrete_test_acc": summary["discrete_test_acc"]},
                           summary["steps"])


def findings(hist: list[dict], n_ops: int, cfg) -> dict:
    """The seed's two findings as measurements (docs/nas.md).

    degenerate: every edge's mixture is (near) one-hot at the end: final max entropy <= ``entropy_tol`` * log K.

    stalled: the structure stopped moving because the data no longer drives it. The hypergradient of Q splits
    into the prior's part (closed form, lambda (1 - alpha)(1 - K p)) and the validation-CE part (the rest,
    ``ce_grad_norm``). Measured: the mean CE part over the last quarter of the logged steps relative to the
    first quarter (``ce_grad_ratio``) and the largest change of any softmax(gamma) entry over the last quarter
    (``mix_move_last_quarter``); stalled when both are below ``findings.grad_ratio_tol`` / ``findings.move_tol``.
    Per edge: undecided (final entropy >= ``findings.undecided_frac`` * log K), and the same stall test on the
    edge's CE part relative to the early median edge's."""
    f = cfg.findings
    log_k = math.log(n_ops)
    ent_keys = [k for k in hist[-1] if k.startswith("entropy/")]
    final_ent = [hist[-1][k] for k in ent_keys]
    rows = [r for r in hist if "gamma_grad_norm" in r]
    q = max(1, len(rows) // 4)

    def mean(key, part):
        return sum(r.get(key, float("nan")) for r in part) / len(part)

    mix_keys = [k for k in hist[-1] if k.startswith("mix/")]

    def move(keys):
        return max(max(r[k] for r in rows[-q:]) - min(r[k] for r in rows[-q:]) for k in keys)

    degenerate = max(final_ent) <= float(f.entropy_tol) * log_k
    ce_first, ce_last = mean("ce_grad_norm", rows[:q]), mean("ce_grad_norm", rows[-q:])
    ce_ratio = ce_last / ce_first if ce_first > 0 else float("nan")
    total_move = move(mix_keys)
    edges = [k.removeprefix("entropy/") for k in ent_keys]
    early = sorted(mean(f"cegrad/{e}", rows[:q]) for e in edges)
    med = early[len(early) // 2]
    per_edge = {}
    for e in edges:
        late = mean(f"cegrad/{e}", rows[-q:])
        undecided = hist[-1][f"entropy/{e}"] >= float(f.undecided_frac) * log_k
        moved = move([k for k in mix_keys if k.startswith(f"mix/{e}/")])
        per_edge[e] = {"entropy": hist[-1][f"entropy/{e}"], "late_ce_grad": late,
                       "late_grad": mean(f"grad/{e}", rows[-q:]),
                       "move_last_quarter": moved, "undecided": bool(undecided),
                       "stalled": bool(late < float(f.grad_ratio_tol) * med and moved < float(f.move_tol))}
    return {"final_entropy_max": max(final_ent), "final_entropy_mean": sum(final_ent) / len(final_ent),
            "log_k": log_k, "degenerate": bool(degenerate),
            "grad_norm_first_quarter": mean("gamma_grad_norm", rows[:q]),
            "grad_norm_last_quarter": mean("gamma_grad_norm", rows[-q:]),
            "prior_grad_norm_last_quarter": mean("prior_grad_norm", rows[-q:]),
            "ce_grad_norm_first_quarter": ce_first, "ce_grad_norm_last_quarter": ce_last, "ce_grad_ratio": ce_ratio,
            "mix_move_last_quarter": total_move,
            "stalled": bool(ce_ratio < float(f.grad_ratio_tol) and total_move < float(f.move_tol)),
            "early_median_edge_ce_grad": med, "undecided_edges": sum(v["undecided"] for v in per_edge.values()),
            "stalled_edges": sum(v["stalled"] for v in per_edge.values()),
            "stalled_undecided_edges": sum(v["stalled"] and v["undecided"] for v in per_edge.values()),
            "edges": per_edge}
