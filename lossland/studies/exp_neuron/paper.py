"""Study E (seed 000): Tables 1–3 and the stability statement, from the runs of the ``exp_neuron_*`` recipes
through the row builders of :mod:`lossland.studies.exp_neuron.tables` (the same rows ``lossland exp-neuron`` prints).

Each protocol is read from ``<root>/exp_neuron_<protocol>`` when it exists, else from ``<root>`` itself (a
``--from`` folder holding one protocol's runs). An embedded data set stands beside the seed's row of the real data
set of the same role (``standins`` in seeds/exp_neuron.yaml), at the seed's size.
"""

from __future__ import annotations

from pathlib import Path

from lossland.errors import LosslandError
from lossland.paper.adapters import Recipe, recipe_names, sweep_dir
from lossland.paper.compare import Ours, judge

PROTOCOLS = ("quality", "speed", "generalization", "stability")
RECIPES = [Recipe.script(f"exp_neuron_{p}") for p in PROTOCOLS]
DIVERGE_AT_LEAST, HIDDEN_AT_MOST = 0.5, 0.1   # "immediately diverges" / "does not"


def context(root: Path) -> dict:
    from lossland.studies.exp_neuron import tables as en

    infos = {}
    for p in PROTOCOLS:
        d = sweep_dir(root, f"exp_neuron_{p}", primary=True, siblings=recipe_names(RECIPES))
        try:
            infos[p] = en.load_infos(d)
        except LosslandError:
            infos[p] = []
    return infos


def _seed_key(row) -> tuple | None:
    from lossland.studies.exp_neuron.seed import STANDINS

    if row.get("seed_size") is None:
        return None
    return STANDINS.get(row["dataset"], row["dataset"]), row["seed_size"]


def _pair(row, loss, wrong):
    return None if row.get(loss) is None or row.get(wrong) is None else [row[loss], row[wrong]]


def _rows(builder, infos, cells) -> list[Ours]:
    out = []
    for r in builder(infos) if infos else []:
        if not any(k.endswith("_setting") for k in r):  # a seed-only row (nothing of ours)
            continue
        out.append(Ours(key=(r["dataset"], r["train_size"]), seed_key=_seed_key(r), values=cells(r),
                        note=f"diverged none {r.get('none_div', '—')}, exp {r.get('exp_div', '—')}"))
    return out


def quality(ctx):
    from lossland.studies.exp_neuron.tables import quality_rows

    return _rows(quality_rows, ctx["quality"], lambda r: {
        "none": _pair(r, "none_loss_sum", "none_misclassified"), "exp": _pair(r, "exp_loss_sum", "exp_misclassified")})


def speed(ctx):
    from lossland.studies.exp_neuron.tables import speed_rows

    return _rows(speed_rows, ctx["speed"], lambda r: {"none": r.get("none_epochs"), "exp": r.get("exp_epochs")})


def generalization(ctx):
    from lossland.studies.exp_neuron.tables import generalization_rows

    return _rows(generalization_rows, ctx["generalization"], lambda r: {
        "none": _pair(r, "none_val_loss_sum", "none_val_misclassified"),
        "exp": _pair(r, "exp_val_loss_sum", "exp_val_misclassified")})


def stability(ctx):
    from lossland.studies.exp_neuron.tables import PROTOCOL_NAMES, SEED_SCALE, stability_rows

    out = []
    for r in stability_rows(ctx["stability"]) if ctx["stability"] else []:
        at_seed = r["augment"] == "exp_neuron" and r["scale"] == SEED_SCALE  # the seed's statement is at its σ
        name = PROTOCOL_NAMES.get(r["protocol"], r["protocol"])
        # the fraction compared is of blow-ups in training; an overflow at step 1 (no update taken) is not one
        out.append(Ours(key=(f"{r['perturbed']} ({name}: {r['dataset']}, {r['augment']}, "
                             f"σ = {r['scale']:g}·mean|w|)",),
                        seed_key=(r["perturbed"],) if at_seed else None,
                        values={"fraction": r["blowup_fraction"], "protocol": r["protocol"]},
                        note=f"{r['diverged']}/{r['runs']} runs diverged: {r['overflow']} overflow at step 1, "
                             f"{r['blowups']} blow-ups in training"))
    return out


TABLES = {f.__name__: f for f in (quality, speed, generalization, stability)}


def _both(rows, col_none="none", col_exp="exp"):
    return [(o, o.values[col_none], o.values[col_exp]) for o in rows
            if o.values.get(col_none) is not None and o.values.get(col_exp) is not None]


def quality_mixed(ctx, tables):
    pairs = _both(tables.get("quality", []))
    if len(pairs) < 2:
        return judge(None, f"{len(pairs)} row(s) with both models; needs 2")
    order = [(tuple(e[::-1]) > tuple(n[::-1])) - (tuple(e[::-1]) < tuple(n[::-1])) for _, n, e in pairs]
    better, worse = order.count(-1), order.count(1)
    return judge(better > 0 and worse > 0, f"the neuron better in {better}, worse in {worse}, equal in "
                 f"{order.count(0)} of {len(pairs)} rows (misclassified, then loss sum)")


def not_faster(ctx, tables):
    pairs = _both(tables.get("speed", []))
    if not pairs:
        return judge(None, "no row where both models reached zero training errors")
    faster = [" ".join(map(str, o.key)) for o, n, e in pairs if e < n]
    return judge(not faster, f"{len(pairs) - len(faster)}/{len(pairs)} rows not faster with the neuron"
                 + (f"; faster: {', '.join(faster)}" if faster else ""))


def worse_generalization(ctx, tables):
    pairs = _both(tables.get("generalization", []))
    if not pairs:
        return judge(None, "no row with both models")
    worse = sum(e[0] > n[0] for _, n, e in pairs)
    return judge(worse == len(pairs), f"validation loss sum higher with the neuron in {worse}/{len(pairs)} rows")


def _unstable(tables, protocol: str):
    """The seed's stability statement on the stability rows of ``protocol`` at the seed's σ (rows matched to a
    seed row; the seed's own rows, which carry no protocol, stand for both): at least DIVERGE_AT_LEAST of the runs
    with a noised exponential neuron blow up in training, at most HIDDEN_AT_MOST with a noised hidden neuron."""
    frac: dict[str, list] = {}
    for o in tables.get("stability", []):
        if o.values.get("protocol", protocol) != protocol:
            continue
        k = (o.seed_key or o.key)[0]
        if o.values.get("fraction") is not None and k in ("exp_neuron", "hidden_neuron"):
            frac.setdefault(k, []).append(float(o.values["fraction"]))
    if set(frac) != {"exp_neuron", "hidden_neuron"}:
        return judge(None, "needs perturbed runs of both the exponential and a hidden neuron"
                     + ("" if protocol == "controlled" else " at the seed's conditions"))
    e, h = max(frac["exp_neuron"]), max(frac["hidden_neuron"])
    return judge(e >= DIVERGE_AT_LEAST and h <= HIDDEN_AT_MOST,
                 f"blow-up fraction: exp neuron {e:.2f} (needs ≥ {DIVERGE_AT_LEAST}), hidden neuron {h:.2f} "
                 f"(needs ≤ {HIDDEN_AT_MOST})")


def exp_neuron_unstable(ctx, tables):
    return _unstable(tables, "controlled")


def exp_neuron_unstable_seed_conditions(ctx, tables):
    return _unstable(tables, "seed")


TRENDS = {f.__name__: f for f in (quality_mixed, not_faster, worse_generalization, exp_neuron_unstable,
                                  exp_neuron_unstable_seed_conditions)}


def _protocol_table(protocol: str):
    def table(ctx) -> list[dict]:
        """The protocol's whole table, as ``lossland exp-neuron --protocol`` prints it (settings, divergences)."""
        from lossland.studies.exp_neuron.tables import display_rows, protocol_rows

        return display_rows(protocol, protocol_rows(protocol, ctx[protocol])) if ctx.get(protocol) else []
    return table


EXTRA = {f"protocol_{p}": _protocol_table(p) for p in PROTOCOLS}


def figures(ctx, out: Path) -> list[Path]:
    """Each protocol's bars (ours without / with the neuron beside the seed's) into the paper folder."""
    from lossland.figures import save_figure
    from lossland.studies.exp_neuron.tables import protocol_figure, protocol_rows

    files = []
    for p in PROTOCOLS:
        rows = protocol_rows(p, ctx[p]) if ctx.get(p) else []
        if rows:
            files.append(save_figure(protocol_figure(p, rows), Path(out) / f"exp_neuron_{p}.png"))
    return files
