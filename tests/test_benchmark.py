"""The benchmark's parts: its timer, the epoch restart of its batch streams, the same-math check,
and a report that prints what ``measure`` returns."""

from __future__ import annotations

import time

import pytest
import torch

from tools import benchmark


def test_seconds_per_step_leaves_the_warmup_out():
    calls = []

    def step() -> None:
        calls.append(1)
        time.sleep(0.3 if len(calls) <= 3 else 0.01)  # the first three calls are slow

    # Timed with them, the mean over 5 steps would be at least (3 * 0.3) / (5 + 2) s.
    assert 0.009 < benchmark.seconds_per_step(step, warmup=3, steps=5) < 0.05


def test_a_stream_starts_a_new_epoch_when_one_ends():
    epochs = []

    def epoch() -> list[int]:
        epochs.append(len(epochs))
        return [10 * len(epochs) + i for i in range(3)]

    draw = benchmark.endless(epoch)
    assert [draw() for _ in range(7)] == [10, 11, 12, 20, 21, 22, 30]
    assert epochs == [0, 1, 2]


def test_both_memory_layouts_give_the_same_losses(mnist):
    assert benchmark.same_math(mnist.train_x[:128], torch.device("cpu"), steps=2) < 1e-4


@pytest.fixture
def measured(mnist, monkeypatch) -> dict:
    """``measure`` with made-up timings and rooflines (each number distinct), real otherwise."""
    gflops = iter([101.0, 103.0, 407.0])  # fp32 before, fp32 after, bf16
    seconds = iter([0.53, 0.29, 0.17])  # plain, ours, ours in bf16 (the order of ``measure``)
    monkeypatch.setattr(benchmark, "load_mnist", lambda: mnist)
    monkeypatch.setattr(benchmark, "matmul_gflops", lambda *a, **k: next(gflops))
    monkeypatch.setattr(benchmark, "step_gflop", lambda device: 11.0)
    monkeypatch.setattr(benchmark, "seconds_per_step", lambda step, w, s: next(seconds))
    monkeypatch.setattr(benchmark, "epoch_of_batches", lambda x: (0.037, 0.211))
    monkeypatch.setattr(benchmark, "same_math", lambda x, device: 2.5e-7)
    return benchmark.measure(torch.device("cpu"), warmup=4, steps=9, bf16=True)


def test_measure_derives_each_ratio_from_the_measured_numbers(measured):
    # Worked out by hand from the made-up numbers: 11 GFLOP a step, 103 and 407 GFLOPS,
    # 0.53, 0.29 and 0.17 s a step, 0.037 and 0.211 s an epoch of batches.
    assert measured["fp32_gflops"] == 103.0 and measured["bf16_gflops"] == 407.0
    assert measured["fp32_floor_s"] == pytest.approx(0.10680, abs=1e-5)
    assert measured["ours_of_roofline"] == pytest.approx(0.36826, abs=1e-5)
    assert measured["bf16_of_bf16_roofline"] == pytest.approx(0.15898, abs=1e-5)
    assert measured["speedup_vs_plain"] == pytest.approx(1.82759, abs=1e-5)
    assert measured["dataloader_ratio"] == pytest.approx(5.70270, abs=1e-5)


def test_the_report_prints_every_measured_number(measured):
    lines = benchmark.report(measured).splitlines()
    expected = [["9 steps timed after 4"], ["103.0 GFLOPS", "2048 x 2048", "101/103"],
                ["11.00 GFLOP", "batch 128", "floor 0.107 s"],
                ["0.530 s/step", "20%"],
                ["0.290 s/step", "37%", "1.83x plain"],
                ["407.0 GFLOPS", "floor 0.027 s"],
                ["0.170 s/step", "16%", "1.71x fp32"],
                ["over 3 steps 2.5e-07"], ["0.037 s", "0.211 s", "(5.7x)"]]
    assert len(lines) == len(expected)
    for line, parts in zip(lines, expected, strict=True):
        assert all(part in line for part in parts), (line, parts)


def test_without_bf16_the_report_says_it_was_not_timed(mnist, monkeypatch):
    monkeypatch.setattr(benchmark, "load_mnist", lambda: mnist)
    monkeypatch.setattr(benchmark, "matmul_gflops", lambda *a, **k: 100.0)
    monkeypatch.setattr(benchmark, "seconds_per_step", lambda step, w, s: 0.3)
    monkeypatch.setattr(benchmark, "epoch_of_batches", lambda x: (0.03, 0.2))
    monkeypatch.setattr(benchmark, "same_math", lambda x, device: 1e-7)
    numbers = benchmark.measure(torch.device("cpu"), warmup=1, steps=1, bf16=False)
    assert not any(key.startswith("bf16") for key in numbers)
    assert benchmark.NO_BF16 in benchmark.report(numbers)
