"""Training-step speed: this implementation against a plain eager loop and the matmul roofline.

    python -m tools.benchmark              # plain, ours in fp32 (and in bf16 if native), one run
    python -m tools.benchmark --profile    # plus a per-layer profile of one step

Timings are ``torch.utils.benchmark``'s, on all of torch's threads. Run it on a quiet machine:
the numbers are only comparable within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from collections.abc import Callable

import torch
from torch.utils.benchmark import Timer
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.flop_counter import FlopCounterMode

from helpers.data import batches, load_mnist
from helpers.devices import as_input, native_bf16, pick_device, prepare_model
from helpers.train import train_step
from helpers.vae import VAE, losses

MATMUL_N = 2048  # the roofline's matrix side
BATCH = 128  # the assignment's batch size
SAME_MATH_STEPS = 3


def timer(fn: Callable[[], object]) -> Timer:
    """A ``Timer`` of ``fn()`` on every thread torch has (its default is one)."""
    return Timer("fn()", globals={"fn": fn}, num_threads=torch.get_num_threads())


def seconds_per_step(step: Callable[[], None], warmup: int, steps: int) -> float:
    """Mean seconds per call of ``step`` over ``steps`` timed calls, after ``warmup`` calls (and
    the two or more of ``Timer.timeit``'s own warm-up)."""
    for _ in range(warmup):
        step()
    return timer(step).timeit(steps).mean


def matmul_gflops(device: torch.device, n: int = MATMUL_N,
                  dtype: torch.dtype = torch.float32) -> float:
    """GFLOPS of the fastest block of n x n matmuls in ``dtype`` (the practical roofline)."""
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    return 2 * n**3 / min(timer(lambda: a @ b).blocked_autorange(min_run_time=1).times) / 1e9


def step_gflop(device: torch.device) -> float:
    """FLOPs of one training step (batch 128), counted by torch's FlopCounterMode."""
    model = VAE().to(device)
    with FlopCounterMode(display=False) as counter:
        train_step(model, torch.optim.Adam(model.parameters()),
                   torch.zeros(BATCH, 1, 32, 32, device=device))
    return counter.get_total_flops() / 1e9


def endless(make: Callable[[], object]) -> Callable[[], object]:
    """The next item of ``make()``'s iterator, starting a new one (an epoch) when it ends."""
    it = iter(())

    def next_item() -> object:
        nonlocal it
        item = next(it, None)
        if item is None:
            it = iter(make())
            item = next(it)
        return item
    return next_item


def ours(x_train: torch.Tensor, device: torch.device,
         precision: str = "fp32") -> Callable[[], None]:
    """This implementation: in-memory batching, channels_last, no host sync per step."""
    torch.manual_seed(0)
    model = prepare_model(VAE().to(device), fast=True)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x_dev, gen = x_train.to(device), torch.Generator().manual_seed(0)
    batch = endless(lambda: batches(x_dev, BATCH, generator=gen))
    return lambda: train_step(model, opt, as_input(batch(), model), precision)


def plain(x_train: torch.Tensor, device: torch.device) -> Callable[[], None]:
    """The textbook loop: NCHW, DataLoader over an in-memory array, .item() every step."""
    torch.manual_seed(0)
    model = VAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = endless(lambda: DataLoader(TensorDataset(x_train.cpu()), batch_size=BATCH,
                                       shuffle=True))

    def step() -> None:
        x = batch()[0].to(device)
        loss = losses(model, x)[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
    return step


def epoch_of_batches(x_train: torch.Tensor) -> tuple[float, float]:
    """Seconds to draw one shuffled epoch of batches: ``batches`` vs ``DataLoader``."""
    t0 = time.perf_counter()
    for _ in batches(x_train, BATCH, generator=torch.Generator().manual_seed(0)):
        pass
    t1 = time.perf_counter()
    for _ in DataLoader(TensorDataset(x_train), batch_size=BATCH, shuffle=True):
        pass
    return t1 - t0, time.perf_counter() - t1


def same_math(x: torch.Tensor, device: torch.device, steps: int = SAME_MATH_STEPS) -> float:
    """Largest relative difference of the losses of NCHW and channels_last on the same batch."""
    results = []
    for fast in (False, True):
        torch.manual_seed(0)
        model = prepare_model(VAE().to(device), fast=fast)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        xb = x[:BATCH].to(device)
        results.append(torch.stack([train_step(model, opt, as_input(xb, model))
                                    for _ in range(steps)]).cpu())
    return float(((results[0] - results[1]).abs() / results[0].abs().clamp_min(1e-3)).max())


def profile_step(x_train: torch.Tensor, device: torch.device, steps: int = 5) -> str:
    """Milliseconds per step of each operator and input shape (forward + backward), top 16."""
    step = ours(x_train, device)
    for _ in range(3):
        step()
    with torch.profiler.profile(record_shapes=True) as prof:
        for _ in range(steps):
            step()
    rows = sorted(((e.self_cpu_time_total / steps / 1e3, e.key, str(e.input_shapes)[:70])
                   for e in prof.key_averages(group_by_input_shape=True)
                   if e.self_cpu_time_total > 0), reverse=True)
    total = sum(r[0] for r in rows)
    lines = [f"per-step profile, {total:.1f} ms of operator time (top 16):",
             f"{'ms':>7} {'share':>6}  {'operator':<32} input shapes"]
    lines += [f"{ms:7.2f} {ms / total:6.1%}  {key:<32} {shapes}" for ms, key, shapes in rows[:16]]
    return "\n".join(lines)


def measure(device: torch.device, warmup: int, steps: int, bf16: bool) -> dict:
    """Every number of the report, from one run (bf16's only when ``bf16``)."""
    x_train = load_mnist().train_x
    before, flop = matmul_gflops(device), step_gflop(device)
    t_plain = seconds_per_step(plain(x_train, device), warmup, steps)
    t_ours = seconds_per_step(ours(x_train, device), warmup, steps)
    after = matmul_gflops(device)
    fp32 = max(before, after)  # the machine may have been busier at one end
    batches_s, loader_s = epoch_of_batches(x_train)
    hardware = (torch.cuda.get_device_name(device) if device.type == "cuda"
                else f"{platform.machine()}, {torch.get_num_threads()} threads")
    r = {"device": f"{device} ({hardware})", "torch": str(torch.__version__),
         "matmul_n": MATMUL_N, "batch": BATCH, "warmup": warmup, "steps": steps,
         "fp32_gflops": fp32, "fp32_gflops_before_after": (before, after), "step_gflop": flop,
         "fp32_floor_s": flop / fp32, "plain_s_per_step": t_plain, "ours_s_per_step": t_ours,
         "plain_of_roofline": flop / t_plain / fp32, "ours_of_roofline": flop / t_ours / fp32,
         "speedup_vs_plain": t_plain / t_ours, "native_bf16": native_bf16(device),
         "same_math_steps": SAME_MATH_STEPS,
         "relative_loss_difference": same_math(x_train, device),
         "epoch_of_batches_s": batches_s, "epoch_of_dataloader_s": loader_s,
         "dataloader_ratio": loader_s / batches_s}
    if bf16:
        t_bf16 = seconds_per_step(ours(x_train, device, "bf16"), warmup, steps)
        roofline = matmul_gflops(device, dtype=torch.bfloat16)
        r |= {"bf16_gflops": roofline, "bf16_floor_s": flop / roofline,
              "bf16_s_per_step": t_bf16, "bf16_of_bf16_roofline": flop / t_bf16 / roofline,
              "bf16_speedup": t_ours / t_bf16}
    return r


BF16_LINES = [
    "bf16 matmul roofline      {bf16_gflops:8.1f} GFLOPS (native bf16: {native_bf16}), floor "
    "{bf16_floor_s:.3f} s",
    "this implementation, bf16 {bf16_s_per_step:8.3f} s/step ({bf16_of_bf16_roofline:.0%} of the "
    "bf16 roofline), {bf16_speedup:.2f}x fp32"]
NO_BF16 = ("bf16: not timed (no native bf16 here, so autocast would be slower than fp32; "
           "--bf16 times it anyway)")


def report(r: dict) -> str:
    """The numbers of ``measure`` as a short table."""
    return "\n".join([
        "device {device}, torch {torch}; {steps} steps timed after {warmup}",
        "fp32 matmul roofline      {fp32_gflops:8.1f} GFLOPS ({matmul_n} x {matmul_n}; "
        "before/after {fp32_gflops_before_after[0]:.0f}/{fp32_gflops_before_after[1]:.0f})",
        "one training step         {step_gflop:8.2f} GFLOP (batch {batch}), floor "
        "{fp32_floor_s:.3f} s",
        "plain eager loop          {plain_s_per_step:8.3f} s/step ({plain_of_roofline:.0%} of "
        "the roofline)",
        "this implementation       {ours_s_per_step:8.3f} s/step ({ours_of_roofline:.0%}), "
        "{speedup_vs_plain:.2f}x plain",
        *(BF16_LINES if "bf16_gflops" in r else [NO_BF16]),
        "NCHW vs channels_last: largest relative loss difference over {same_math_steps} steps "
        "{relative_loss_difference:.1e}",
        "one shuffled epoch of batches: in-memory {epoch_of_batches_s:.3f} s, DataLoader "
        "{epoch_of_dataloader_s:.3f} s ({dataloader_ratio:.1f}x)"]).format(**r)


def main() -> None:
    """Measure everything in one run and print the report (and JSON with --json)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--bf16", action="store_true",
                   help="time bf16 autocast even where the device has no native bf16")
    p.add_argument("--profile", action="store_true", help="print a per-operator profile")
    p.add_argument("--json", action="store_true", help="print the numbers as JSON too")
    args = p.parse_args()
    device = pick_device(args.device)
    numbers = measure(device, args.warmup, args.steps, args.bf16 or native_bf16(device))
    print(report(numbers))
    if args.json:
        print(json.dumps(numbers))
    if args.profile:
        print(profile_step(load_mnist().train_x, device))


if __name__ == "__main__":
    main()
