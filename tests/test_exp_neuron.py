"""Study E's exponential neuron (docs/exp_neuron.md): the wrapper, its penalty, the zero-error step, the seed's
units, the perturbation and the one-line refusals."""

import json

import pytest
import torch

from lossland.build import build_regularizer
from lossland.config import compose
from lossland.errors import LosslandError
from lossland.models import MLP, CNNPReLU, ExpNeuron
from lossland.models.exp_neuron import perturb
from lossland.regularizers import ExpNeuronPenalty
from lossland.runs import Run
from lossland.schema import validate
from lossland.train import run

SPHERES = ["data=spheres", "data.dim=10", "data.radii=[1.0,1.5]", "data.train_size=128", "data.val_size=64",
           "data.test_size=64", "data.batch_size=32", "data.normalize=standard", "model=mlp", "model.hidden=[8]",
           "model.activation=sigmoid", "loss=hinge3", "optimizer=adam", "lr=0.01", "metrics.enabled=false"]


@pytest.mark.parametrize("base", [MLP((3, 4), 1, hidden=[5], activation="sigmoid"),
                                  CNNPReLU((1, 28, 28), 1, [4, 4, 4])])
def test_with_a_zero_the_output_is_the_base_models(base):
    torch.manual_seed(0)
    shape = (3, 4) if isinstance(base, MLP) else (1, 28, 28)
    model = ExpNeuron(base, shape, 1, a_init=0.0, w_std=0.3, b_init=0.5)
    x = torch.randn(7, *shape)
    assert torch.equal(model(x), base(x))
    with torch.no_grad():
        model.a.fill_(0.7)
    expected = base(x) + 0.7 * torch.exp(x.flatten(1) @ model.w + model.b).unsqueeze(1)
    assert torch.allclose(model(x), expected)


def test_penalty_gradient_is_lambda_a_and_touches_a_only():
    model = ExpNeuron(MLP((4,), 1, hidden=[3]), (4,), 1, a_init=1.7)
    lam = 0.3
    value = ExpNeuronPenalty(lam)(model)
    assert float(value) == pytest.approx(lam * 1.7 ** 2 / 2)
    value.backward()
    assert float(model.a.grad) == pytest.approx(lam * 1.7)
    assert all(p.grad is None for n, p in model.named_parameters() if n != "a")
    with pytest.raises(ValueError, match="≥ 0"):
        ExpNeuronPenalty(-1.0)


def test_finite_difference_check_of_the_augmented_model():
    torch.manual_seed(1)
    model = ExpNeuron(MLP((5,), 1, hidden=[4], activation="sigmoid"), (5,), 1, a_init=0.4, w_std=0.2).double()
    x = torch.randn(6, 5, dtype=torch.float64)
    params = tuple(model.parameters())

    def f(*ps):
        return torch.func.functional_call(model, dict(zip([n for n, _ in model.named_parameters()], ps)), (x,))

    assert torch.autograd.gradcheck(f, params, eps=1e-6, atol=1e-6)
    assert torch.autograd.gradcheck(lambda xx: model(xx), (x.requires_grad_(),), eps=1e-6, atol=1e-6)


def test_augment_from_the_config_brings_its_penalty_and_keeps_the_base_init(make_cfg):
    plain = compose([*SPHERES, "augment=none"])
    exp = compose([*SPHERES, "augment=exp_neuron", "augment.lam=0.5"])
    assert build_regularizer(exp).lam == 0.5
    assert build_regularizer(compose([*SPHERES, "augment=exp_neuron", "regularizer=weight_decay"])).terms[1].lam == 1e-3
    a = run(make_cfg(*SPHERES, "trainer.max_steps=3", out="a"))
    b = run(make_cfg(*SPHERES, "trainer.max_steps=3", "augment=exp_neuron", out="b"))
    assert a["status"] == b["status"] == "ok" and plain.augment.model is None
    sa = torch.load(make_cfg(out="a").out_dir + "/checkpoints/init.pt", weights_only=True)
    sb = torch.load(make_cfg(out="b").out_dir + "/checkpoints/init.pt", weights_only=True)
    assert all(torch.equal(v, sb[f"base.{k}"]) for k, v in sa.items())  # same base init
    assert {"a", "w", "b"} <= sb.keys()
    model, _, _ = Run(make_cfg(out="b").out_dir).model()  # the run reader rebuilds the wrapped model
    assert isinstance(model, ExpNeuron)


def test_zero_error_step_and_seed_units(make_cfg, tmp_path):
    s = run(make_cfg(*SPHERES, "data.radii=[1.0,5.0]", "lr=0.05", "trainer.max_steps=-1", "trainer.max_epochs=100",
                     "metrics.convergence.enabled=true", "metrics.convergence.stop_at_zero_error=true"))
    assert s["status"] == "ok" and s["converged_step"] is not None and s["steps"] == s["converged_step"]
    assert s["converged_epoch"] == s["converged_step"] / 4
    f = s["final"]
    assert f["train_misclassified"] == 0
    for split, n in (("train", 128), ("val", 64), ("test", 64)):
        assert f[f"{split}_loss_sum"] == pytest.approx(f[f"{split}_loss"] * n)
        assert f[f"{split}_misclassified"] == round(f[f"{split}_error"] * n)
    rows = [r for r in Run(tmp_path / "run").rows() if "train_misclassified" in r]
    assert rows[0]["step"] == 0 and rows[-1]["train_misclassified"] == 0
    assert all(r["train_misclassified"] > 0 for r in rows[:-1])
    assert [r["step"] for r in rows] == list(range(0, s["steps"] + 1, 4))
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["converged_step"] == s["converged_step"]


def test_perturbation_sigma_is_a_tenth_of_the_mean_abs_weight():
    torch.manual_seed(0)
    model = ExpNeuron(MLP((6,), 1, hidden=[4]), (6,), 1, a_init=0.5, w_std=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    g = torch.Generator().manual_seed(0)
    info = perturb(model, "exp_neuron", 0.1, g)
    mean_abs = float(torch.cat([before[0].reshape(1), before[1], before[2].reshape(1)]).abs().mean())
    assert info["sigma"] == pytest.approx(mean_abs / 10)
    changed = [not torch.equal(a, b) for a, b in zip(before, model.parameters())]
    assert changed[:3] == [True, True, True] and not any(changed[3:])
    info = perturb(model, "hidden_neuron", 0.1, g)
    w = model.base.net[1].weight
    assert not torch.equal(w[0], before[3][0]) and torch.equal(w[1:], before[3][1:])


BAD = [
    (["augment=exp_neuron", "augment.lam=-1"], "augment.lam=-1 is not valid: lam must be a number ≥ 0 or null"),
    (["augment.perturb.target=exp_neuron"], "augment.perturb.target=exp_neuron is not valid without the neuron"),
    (["augment.perturb.target=output"], "augment.perturb.target=output is not valid"),
    (["metrics.convergence.every_n_steps=0"], "metrics.convergence.every_n_steps=0 is not valid"),
]


@pytest.mark.parametrize("overrides, message", BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_are_one_line(overrides, message):
    with pytest.raises(LosslandError) as e:
        validate(compose([*SPHERES, *overrides]))
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("overrides, message", [
    (["data=digits", "loss=ce"], "augment=exp_neuron needs a binary model with one output"),
    (["data=digits", "loss=hinge3"], "loss=hinge3 does not fit data=digits: the cubic hinge loss is binary"),
])
def test_neuron_on_a_multiclass_model_or_hinge_on_ten_classes_is_one_line(make_cfg, overrides, message):
    with pytest.raises(LosslandError) as e:
        run(make_cfg("model=mlp", "model.hidden=[8]", "augment=exp_neuron", "trainer.max_steps=2",
                     "metrics.enabled=false", "optimizer=sgd", *overrides))
    assert message in str(e.value) and "\n" not in str(e.value)


# ------------------------------------------------------------------------- the seed's conditions (stability)
def test_linear_w_init_draws_as_nn_linear_does():
    torch.manual_seed(0)
    m = ExpNeuron(MLP((100,), 1, hidden=[4]), (100,), 1, w_init="linear")
    assert float(m.w.abs().max()) <= 0.1 and float(m.w.std()) == pytest.approx(0.1 / 3 ** 0.5, rel=0.25)
    assert abs(float(m.b)) <= 0.1 and float(m.a) == 0.0
    with pytest.raises(LosslandError, match="w_init=uniform is not valid"):
        ExpNeuron(MLP((3,), 1, hidden=[2]), (3,), 1, w_init="uniform")


def test_shifted_schedule_takes_the_rates_the_source_run_would_take_next():
    from lossland.optim import PiecewiseLinear, Shifted

    inner = PiecewiseLinear(start=1e-2, end=1e-4, transition_start=0, transition_length=100, log=True)
    s = Shifted(inner, 60)
    assert [s(k) for k in (0, 10, 40, 99)] == [inner(60), inner(70), inner(100), inner(159)]
    with pytest.raises(ValueError):
        Shifted(inner, -1)


def test_config_digest_keeps_runs_recorded_before_the_new_keys(make_cfg):
    from omegaconf import OmegaConf

    from lossland.job import config_digest

    cfg = make_cfg(*SPHERES, "augment=exp_neuron")
    old = OmegaConf.to_container(cfg, resolve=True)  # as recorded before init_state and w_init existed
    del old["init_state"]
    del old["augment"]["model"]["w_init"]
    assert config_digest(cfg) == config_digest(cfg, resolved=old)
    assert config_digest(make_cfg(*SPHERES, "augment=exp_neuron", "augment.model.w_init=linear")) != config_digest(cfg)


def test_init_state_continue_keeps_the_optimizer_state_and_the_schedule(make_cfg, tmp_path):
    sched = ["schedule=linear", "schedule.start=0.01", "schedule.end=0.0001", "schedule.transition_start=0",
             "schedule.transition_length=20", "schedule.log=true", "trainer.max_steps=-1", "trainer.max_epochs=2",
             "augment=exp_neuron", "logger=csv"]
    base = run(make_cfg(*SPHERES, *sched, out="base"))
    assert base["status"] == "ok" and base["steps"] == 8
    src = torch.load(tmp_path / "base" / "checkpoints" / "last.ckpt", weights_only=False)["optimizer_states"][0]
    runs = {}
    for state in ("weights", "continue"):
        runs[state] = run(make_cfg(*SPHERES, *sched, f"init_from={tmp_path / 'base'}", f"init_state={state}",
                                   "augment.perturb.target=exp_neuron", "trainer.max_epochs=1", out=state))
    assert runs["continue"]["continued_from_step"] == 8 and "continued_from_step" not in runs["weights"]
    assert runs["continue"]["lr"] == pytest.approx(0.01 * 0.01 ** (8 / 20))  # the rate at the source's step 8
    assert runs["weights"]["lr"] == pytest.approx(0.01)
    ends = {s: torch.load(tmp_path / s / "checkpoints" / "last.ckpt", weights_only=False)["optimizer_states"][0]
            for s in runs}
    first = next(iter(src["state"]))
    assert float(ends["continue"]["state"][first]["step"]) == float(src["state"][first]["step"]) + 4  # Adam goes on
    assert float(ends["weights"]["state"][first]["step"]) == 4                                         # a fresh one
    p = runs["continue"]["perturbation"]  # the training loss before and at the noised weights
    assert p["loss_before"] == pytest.approx(base["final"]["train_loss"], rel=1e-4) and p["loss_after"] >= 0


def test_init_state_continue_does_not_stack():
    from lossland.sweep.vectorized.stack import check_stackable

    cfgs = [compose([*SPHERES, "augment=exp_neuron", "init_from=/x", "init_state=continue", f"seed={s}"])
            for s in (0, 1)]
    with pytest.raises(LosslandError, match="init_state=continue does not stack"):
        check_stackable(cfgs)


def _info(protocol, target, scale, status="ok", step=None, augment="exp_neuron", loss_after=0.1):
    from lossland.studies.exp_neuron.tables import RunInfo

    summary = {"status": status, "perturbation": {"sigma": 0.1, "loss_before": 0.01, "loss_after": loss_after}}
    if step is not None:
        summary.update(diverged_at_step=step, diverged_cause="non-finite training loss")
    return RunInfo(dataset="digits 1v7", size=200, augment=augment, lr=None, lam=None, target=target, status=status,
                   summary=summary, scale=scale, protocol=protocol)


def test_a_divergence_at_step_1_is_an_overflow_not_a_blow_up():
    from lossland.studies.exp_neuron.tables import divergence_kind, stability_rows

    assert divergence_kind({"status": "diverged", "diverged_at_step": 1}) == "overflow"
    assert divergence_kind({"status": "diverged", "diverged_at_step": 7}) == "blowup"
    assert divergence_kind({"status": "ok"}) is None
    infos = [_info("seed", "exp_neuron", 0.1, "diverged", 1, loss_after=None),
             _info("seed", "exp_neuron", 0.1, "diverged", 12), _info("seed", "exp_neuron", 0.1, "diverged", 30),
             _info("seed", "exp_neuron", 0.1), _info("controlled", "exp_neuron", 0.1, "diverged", 1, loss_after=None)]
    rows = {r["protocol"]: r for r in stability_rows(infos)}
    s, c = rows["seed"], rows["controlled"]
    assert (s["runs"], s["diverged"], s["overflow"], s["blowups"], s["fraction"], s["blowup_fraction"]) == \
        (4, 3, 1, 2, 0.75, 0.5)
    assert s["how"] == "1 overflow at step 1; 2 blow-up in training (steps 12, 30)" and s["seed_fraction"] == 1.0
    assert (c["overflow"], c["blowups"], c["blowup_fraction"], c["loss_after"]) == (1, 0, 0.0, float("inf"))


def test_stability_verdicts_count_blow_ups_per_protocol():
    from lossland.paper.compare import FAILS, NOT_MEASURED, REPRODUCES
    from lossland.studies.exp_neuron import paper

    def tables(exp_seed, hidden_seed, exp_ctrl=0.0):
        infos = [_info("seed", "exp_neuron", 0.1, *a) for a in exp_seed] + \
            [_info("seed", "hidden_neuron", 0.1, *a) for a in hidden_seed] + \
            [_info("controlled", "exp_neuron", 0.1, *a) for a in exp_ctrl] + \
            [_info("controlled", "hidden_neuron", 0.1)]
        return {"stability": paper.stability({"stability": infos})}

    blow, over, ok = ("diverged", 5), ("diverged", 1), ("ok",)
    t = tables([blow, blow, ok], [ok, ok], [over, over])
    assert paper.exp_neuron_unstable_seed_conditions(None, t)[0] == REPRODUCES  # 2/3 blow up, no hidden one
    v, detail = paper.exp_neuron_unstable(None, t)                              # overflows at step 1 are no blow-up
    assert v == FAILS and "exp neuron 0.00" in detail
    t = tables([over, over, ok], [ok, ok], [blow, blow])
    assert paper.exp_neuron_unstable_seed_conditions(None, t)[0] == FAILS
    assert paper.exp_neuron_unstable(None, t)[0] == REPRODUCES
    t = tables([blow, blow], [blow, ok], [])
    assert paper.exp_neuron_unstable_seed_conditions(None, t)[0] == FAILS           # the hidden neuron blows up too
    t = tables([blow], [], [blow])
    assert paper.exp_neuron_unstable_seed_conditions(None, t)[0] == NOT_MEASURED     # no hidden-neuron runs


def test_net_6_at_its_channels_is_its_own_row(make_cfg):
    from lossland.studies.exp_neuron.seed import STANDINS
    from lossland.studies.exp_neuron.tables import row_label

    mnist = ["data=mnist5k", "data.classes=[1,7]", "loss=hinge3", "model=cnn_prelu"]
    assert row_label(make_cfg(*mnist, "model.channels=[16,32,64]")) == "mnist5k 1v7"
    net6 = row_label(make_cfg(*mnist, "model.channels=[64,128,256]"))
    assert net6 == "mnist5k 1v7 (net 6 at 64-128-256)" and STANDINS[net6] == "mnist 1v7"
