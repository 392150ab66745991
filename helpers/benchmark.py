"""Training-step speed: this implementation against a plain eager loop and the matmul roofline.

    python -m helpers.benchmark              # plain, ours in fp32 and in bf16, one run
    python -m helpers.benchmark --profile    # plus a per-layer profile of one step

Run it on a quiet machine: the numbers are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from helpers.data import batches, load_mnist
from helpers.devices import as_input, native_bf16, pick_device, prepare_model
from helpers.train import train_step
from helpers.vae import VAE


def matmul_gflops(device: torch.device, n: int = 2048, reps: int = 10,
                  dtype: torch.dtype = torch.float32) -> float:
    """Best-of-``reps`` GFLOPS of an n x n matmul in ``dtype`` (the practical roofline)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(reps + 2):
        _sync(device)
        t0 = time.perf_counter()
        a @ b
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def step_gflop(device: torch.device) -> float:
    """FLOPs of one training step (batch 128), counted by torch's FlopCounterMode."""
    model = VAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.zeros(128, 1, 32, 32, device=device)
    with FlopCounterMode(display=False) as counter:
        train_step(model, opt, x)
    return counter.get_total_flops() / 1e9


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(step: Callable[[], None], device: torch.device, warmup: int, steps: int) -> float:
    """Median-free simple timing: seconds per step over ``steps`` after ``warmup``."""
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return (time.perf_counter() - t0) / steps


def ours(x_train: torch.Tensor, device: torch.device,
         precision: str = "fp32") -> Callable[[], None]:
    """This implementation: in-memory batching, channels_last, no host sync per step."""
    torch.manual_seed(0)
    model = prepare_model(VAE().to(device), fast=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_dev = x_train.to(device)
    gen = torch.Generator().manual_seed(0)
    it = iter(())

    def step() -> None:
        nonlocal it
        x = next(it, None)
        if x is None:
            it = batches(x_dev, 128, generator=gen)
            x = next(it)
        train_step(model, opt, as_input(x, model), precision)

    return step


def plain(x_train: torch.Tensor, device: torch.device) -> Callable[[], None]:
    """The textbook loop: NCHW, DataLoader over an in-memory array, .item() every step."""
    torch.manual_seed(0)
    model = VAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(x_train.cpu()), batch_size=128, shuffle=True)
    it = iter(())

    def step() -> None:
        nonlocal it
        batch = next(it, None)
        if batch is None:
            it = iter(loader)
            batch = next(it)
        x = batch[0].to(device)
        x_hat, mu, log_sigma, _ = model(x)
        recon = ((x - x_hat) ** 2).flatten(1).sum(1).mean()
        kl = (0.5 * ((2 * log_sigma).exp() + mu**2 - 2 * log_sigma - 1).sum(1)).mean()
        loss = recon + kl
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()

    return step


def epoch_of_batches(x_train: torch.Tensor) -> tuple[float, float]:
    """Seconds to draw one shuffled epoch of batches of 128: ``batches`` vs ``DataLoader``."""
    t0 = time.perf_counter()
    for _ in batches(x_train, 128, generator=torch.Generator().manual_seed(0)):
        pass
    ours_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in DataLoader(TensorDataset(x_train), batch_size=128, shuffle=True):
        pass
    return ours_s, time.perf_counter() - t0


def same_math(x: torch.Tensor, device: torch.device, steps: int = 3) -> float:
    """Largest relative difference of the losses of both variants on the same batches."""
    results = []
    for fast in (False, True):
        torch.manual_seed(0)
        model = prepare_model(VAE().to(device), fast=fast)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xb = x[:128].to(device)
        results.append(torch.stack([train_step(model, opt, as_input(xb, model))
                                    for _ in range(steps)]).cpu())
    return float(((results[0] - results[1]).abs() / results[0].abs().clamp_min(1e-3)).max())


def profile_step(x_train: torch.Tensor, device: torch.device, steps: int = 5) -> str:
    """Per-layer table: milliseconds per step of each convolution/linear (forward + backward)
    and of the remaining operator kinds, from torch.profiler with input shapes recorded."""
    step = ours(x_train, device)
    for _ in range(3):
        step()
    with torch.profiler.profile(record_shapes=True) as prof:
        for _ in range(steps):
            step()
    rows = []
    for e in prof.key_averages(group_by_input_shape=True):
        if e.self_cpu_time_total > 0:
            rows.append((e.self_cpu_time_total / steps / 1e3, e.key, str(e.input_shapes)[:70]))
    rows.sort(reverse=True)
    total = sum(r[0] for r in rows)
    lines = [f"per-step profile, {total:.1f} ms of operator time (top 16):",
             f"{'ms':>7} {'share':>6}  {'operator':<32} input shapes"]
    lines += [f"{ms:7.2f} {ms / total:6.1%}  {key:<32} {shapes}" for ms, key, shapes in rows[:16]]
    return "\n".join(lines)


def main() -> None:
    """Measure all three in one run and print a report (and JSON with --json)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--profile", action="store_true", help="print a per-operator profile")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON too")
    args = p.parse_args()
    device = pick_device(args.device)
    x_train = load_mnist().train_x

    gflops = matmul_gflops(device)
    flop = step_gflop(device)
    t_plain = time_steps(plain(x_train, device), device, args.warmup, args.steps)
    t_ours = time_steps(ours(x_train, device), device, args.warmup, args.steps)
    t_bf16 = time_steps(ours(x_train, device, "bf16"), device, args.warmup, args.steps)
    gflops_after = matmul_gflops(device)  # the machine may have been busier at the start
    roofline = max(gflops, gflops_after)
    roofline_bf16 = matmul_gflops(device, dtype=torch.bfloat16)
    diff = same_math(x_train, device)
    batch_ours, batch_loader = epoch_of_batches(x_train)
    hw = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{platform.machine()}, {torch.get_num_threads()} threads"
    report = {
        "device": str(device), "hardware": hw, "torch": str(torch.__version__),
        "matmul_gflops": round(roofline, 1), "step_gflop": round(flop, 2),
        "plain_s_per_step": round(t_plain, 4), "ours_s_per_step": round(t_ours, 4),
        "speedup_vs_plain": round(t_plain / t_ours, 2),
        "ours_fraction_of_roofline": round(flop / t_ours / roofline, 3),
        "plain_fraction_of_roofline": round(flop / t_plain / roofline, 3),
        "bf16_s_per_step": round(t_bf16, 4), "bf16_speedup_vs_fp32": round(t_ours / t_bf16, 2),
        "bf16_matmul_gflops": round(roofline_bf16, 1), "native_bf16": native_bf16(device),
        "bf16_fraction_of_bf16_roofline": round(flop / t_bf16 / roofline_bf16, 3),
        "max_relative_loss_difference": diff,
        "epoch_of_batches_s": round(batch_ours, 3), "epoch_of_dataloader_s": round(batch_loader, 3),
    }
    print(f"device {report['device']} ({hw}), torch {report['torch']}")
    print(f"fp32 matmul roofline     {roofline:8.1f} GFLOPS (2048x2048; before/after: "
          f"{gflops:.0f}/{gflops_after:.0f})")
    print(f"one training step        {flop:8.2f} GFLOP (batch 128) -> floor "
          f"{flop / roofline:.3f} s")
    print(f"plain eager loop         {t_plain:8.3f} s/step  "
          f"({report['plain_fraction_of_roofline']:.0%} of roofline)")
    print(f"this implementation      {t_ours:8.3f} s/step  "
          f"({report['ours_fraction_of_roofline']:.0%} of roofline)")
    print(f"speedup vs plain         {report['speedup_vs_plain']:8.2f}x")
    print(f"bf16 matmul roofline     {roofline_bf16:8.1f} GFLOPS (native bf16: "
          f"{report['native_bf16']}) -> floor {flop / roofline_bf16:.3f} s")
    print(f"this implementation, bf16 autocast {t_bf16:.3f} s/step "
          f"({report['bf16_fraction_of_bf16_roofline']:.0%} of the bf16 roofline), "
          f"{report['bf16_speedup_vs_fp32']:.2f}x fp32")
    print(f"same math: largest relative loss difference over 3 steps {diff:.1e}")
    print(f"one shuffled epoch of batches: in-memory {batch_ours:.3f} s, DataLoader "
          f"{batch_loader:.3f} s ({batch_loader / batch_ours:.0f}x)")
    if args.json:
        print(json.dumps(report))
    if args.profile:
        print(profile_step(x_train, device))


if __name__ == "__main__":
    main()
