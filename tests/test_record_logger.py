"""``metrics.csv`` as :class:`lossland.loggers.RecordLogger` writes it at every flush: the lines it keeps from
one flush to the next must give exactly the file written from scratch."""

import csv
import io
import random

from lossland.loggers import RecordLogger
from lossland.records import METRICS_CSV


def from_scratch(rows: list[dict]) -> str:
    """The file's text made from every row at once: every column in order of first appearance, step and epoch
    as integers, metrics as ``repr``, an empty cell where a row lacks a metric."""
    cols = {"step": None, "epoch": None}
    for r in rows:
        cols.update(dict.fromkeys(r))
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=list(cols), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (int(v) if k in ("step", "epoch") else repr(v)) for k, v in r.items()})
    return out.getvalue()


def test_every_flush_writes_the_whole_file_as_if_from_scratch(tmp_path):
    rng = random.Random(0)
    resumed = [{"step": 0, "epoch": 0, "train/batch_loss": 0.5}, {"step": 3, "epoch": 0, "gm": 1.25}]
    logger = RecordLogger(tmp_path, rows=[dict(r) for r in resumed])
    names = ["train/batch_loss", "train/batch_error", "gm", "test/loss", "a,b", 'q"uote']
    step, epoch, flushes = 3, 0, 0
    for _ in range(400):
        move = rng.random()
        if move < 0.5:
            step += 1
        elif move < 0.55:
            epoch += 1
        # a late column now and then (a new metric mid-run), same-step metrics merged into the last row
        k = rng.randrange(2 + min(len(names) - 2, step // 40))
        logger.log_metrics({"epoch": epoch, names[k]: rng.choice([rng.random(), 1e-30, -2.5, float("nan")])}, step)
        if rng.random() < 0.3:
            logger.save()
            flushes += 1
            assert (tmp_path / METRICS_CSV).read_text() == from_scratch(logger.rows)
    assert flushes > 50 and len(logger.rows) > 100
    header = next(csv.reader([(tmp_path / METRICS_CSV).read_text().splitlines()[0]]))
    assert header[:5] == ["step", "epoch", "train/batch_loss", "gm", "train/batch_error"] and set(names) <= set(header)
