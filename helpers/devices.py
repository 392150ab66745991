"""Where and in what arithmetic training runs: the device, bf16 or fp32, the memory layout."""

from __future__ import annotations

from pathlib import Path

import torch

from helpers.vae import VAE

PRECISIONS = ("fp32", "bf16", "auto")
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # the CPU flags of native bf16 arithmetic


def pick_device(name: str = "auto") -> torch.device:
    """The machine's accelerator (CUDA, MPS, ...) or else the CPU for ``auto``; otherwise the
    named device."""
    if name != "auto":
        return torch.device(name)
    return torch.accelerator.current_accelerator(check_available=True) or torch.device("cpu")


def pick_precision(name: str, device: torch.device) -> str:
    """``fp32`` or ``bf16``; ``auto`` picks bf16 only where ``device`` runs it natively."""
    if name not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {name!r}.")
    if name != "auto":
        return name
    return "bf16" if native_bf16(device) else "fp32"


def native_bf16(device: torch.device) -> bool:
    """Does ``device`` do bf16 arithmetic in hardware (a CUDA GPU with bf16, a CPU with
    AVX512-BF16 or AMX)? MPS and older CPUs/GPUs emulate it, which is slower than fp32."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(BF16_FLAGS & cpu_flags())
    return False


def cpu_flags() -> set[str]:
    """The CPU's feature flags as Linux reports them (empty elsewhere: auto then means fp32)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    return {f for line in text.splitlines() if line.startswith("flags") for f in line.split()}


def prepare_model(model: VAE, fast: bool) -> VAE:
    """Use channels_last memory on the CPU when ``fast``: same math, better conv kernels."""
    if fast and next(model.parameters()).device.type == "cpu":
        model.to(memory_format=torch.channels_last)
    return model


def as_input(x: torch.Tensor, model: VAE) -> torch.Tensor:
    """Match the model's memory format (a layout change only)."""
    if model.encoder[0].weight.is_contiguous(memory_format=torch.channels_last) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
