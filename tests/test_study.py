"""The study's tables: what they compute from histories laid out as ``train`` writes them."""

from __future__ import annotations

import re

import pytest
import torch

from helpers import study, train
from tools import study as tool


def _history(test: list[float], kl: list[float] | None = None) -> dict[str, torch.Tensor]:
    """A history with the given test -ELBO per epoch (index 0: initialisation) and minibatch KL."""
    kl = kl or [0.0]
    train = torch.zeros(len(kl), 3)
    train[:, 2] = torch.tensor(kl)
    test_rows = torch.zeros(len(test), 3)
    test_rows[:, 0] = torch.tensor(test)
    return {"train": train, "test": test_rows}


def _rows(table: str) -> dict[str, list[float]]:
    """A printed table's rows by their label (text before a run of spaces), as numbers."""
    cells = [re.split(r"\s{2,}", line.strip()) for line in table.splitlines()]
    return {row[0]: [float(v) for v in row[1:]] for row in cells if row[0] != "seed"
            and all(c.isdigit() or c in ".-+" for c in "".join(row[1:]))}


def test_seed_table_gives_each_seed_then_the_median_the_worst_and_the_gap():
    runs = {s: _history([900, 80 + s, 70 + s]) for s in range(4)}  # four seeds: an even count
    rows = _rows(study.seed_table({"one": runs}, epochs=(1, 2)))
    assert rows["0"] == [80, 70] and rows["3"] == [83, 73]
    assert rows["median"] == [81.5, 71.5]  # between the middle two, not the lower of them
    assert rows["worst"] == [83, 73] and rows["worst - median"] == [1.5, 1.5]


def test_seed_table_shows_the_epochs_asked_for():
    runs = {0: _history([900, 81, 72, 63])}
    assert _rows(study.seed_table({"one": runs}, epochs=(1, 3)))["0"] == [81, 63]


def test_seed_table_sets_recipes_side_by_side_on_their_common_seeds():
    a = {s: _history([900, 80 + s]) for s in range(3)}
    b = {s: _history([900, 60 - s]) for s in range(1, 4)}
    table = study.seed_table({"a": a, "b": b}, epochs=(1,))
    assert table.splitlines()[0].split() == ["a", "b"]
    rows = _rows(table)
    assert set(rows) == {"1", "2", "median", "worst", "worst - median"}
    assert rows["1"] == [81, 59] and rows["2"] == [82, 58]


def test_difference_table_subtracts_the_baseline_seed_by_seed():
    runs = {0: _history([0, 60, 50]), 1: _history([0, 62, 49])}
    base = {0: _history([0, 61, 50.5]), 1: _history([0, 61, 48]), 2: _history([0, 1, 1])}
    rows = _rows(tool.difference_table(runs, base, epochs=2))
    assert rows == {"0": [-1, -0.5], "1": [1, 1]}


def test_peak_table_finds_each_runs_largest_early_kl_and_its_step():
    plain = {0: _history([0], kl=[0.1, 9.0, 3.0]), 1: _history([0], kl=[0.1, 0.2, 0.3])}
    warm = {0: _history([0], kl=[0.1, 0.2, 5.0]), 1: _history([0], kl=[4.0, 0.2, 0.3])}
    lines = tool.peak_table({"plain": plain, "warm": warm}, steps=3).splitlines()
    assert lines[1].split() == ["0", "9.0", "nats", "at", "step", "2",
                                "5.0", "nats", "at", "step", "3"]
    assert lines[2].split()[1::5] == ["0.3", "4.0"]


def test_log_sigma_table_reads_the_mean_before_each_step():
    probes = {f"s{s}": {"log_sigma_mean": torch.tensor([0.0, 0.1 * s, -0.2 * s])}
              for s in range(2)}
    lines = tool.log_sigma_table(probes, steps=(2, 3)).splitlines()
    assert lines[0].split() == ["before", "step", "seed", "0", "seed", "1"]
    assert [float(v) for v in lines[1].split()[1:]] == [0.0, 0.1]
    assert [float(v) for v in lines[2].split()[1:]] == [0.0, -0.2]


def test_the_probe_takes_the_training_loops_own_steps(small, tmp_path):
    config = train.Config(epochs=1, warmup=2, precision="fp32")
    _, state = train.train(config, out=tmp_path / "run.pt", data=small, device="cpu",
                           progress=False)
    probed = tool.probe(config, steps=10, data=small)  # 10 asked, fewer in the epoch
    rows = torch.stack([probed["neg_elbo"], probed["recon"], probed["KL"]], dim=1)
    assert len(rows) == -(-len(small.train_x) // config.batch_size) < 10
    assert torch.equal(rows, state["history"]["train"])
    assert probed["lr"].tolist() == pytest.approx([train.learning_rate(config, s)
                                                   for s in range(len(rows))])
    assert (probed["head_update"] > 0).all() and (probed["head_grad"] > 0).all()


def test_the_docs_seed_figure_is_current_and_legible(tmp_path):
    from figure_checks import text_overlaps, texts_cut_off, texts_too_small

    fig = tool.seed_figure(study.compared(study.load_study()))
    assert not text_overlaps(fig) and not texts_cut_off(fig) and not texts_too_small(fig)
    tool.main(["figure", "--out", str(tmp_path / "seed-study.svg")])
    assert (tmp_path / "seed-study.svg").read_bytes() == tool.SEED_FIGURE.read_bytes(), (
        "docs/seed-study.svg is stale: python -m tools.study figure")
