"""Device, mixed precision and kernel settings from the ``hardware`` config."""

from __future__ import annotations

import contextlib

import torch
from omegaconf import DictConfig

from gan_lab.errors import ConfigError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(hw: DictConfig) -> torch.device:
    """``auto`` picks CUDA when present; asking for CUDA without one is an error, not a silent CPU run."""
    if hw.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(hw.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"hardware.device={hw.device} but CUDA is not available here; use hardware=cpu or hardware=auto")
    return device


@contextlib.contextmanager
def process_flags(hw: DictConfig, device: torch.device):
    """Process-wide torch settings of a run (flush-denormal on CPU; TF32 and cudnn autotuning on
    CUDA), set once by each app around its work and restored after, so nothing leaks into tests
    or into another app in the same process."""
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    try:
        if device.type == "cpu":
            torch.set_flush_denormal(bool(hw.flush_denormal))
        if device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = bool(hw.tf32)
            torch.backends.cudnn.allow_tf32 = bool(hw.tf32)
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.set_flush_denormal(False)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


class Hardware:
    """Autocast context and per-network gradient scalers for one run.

    bf16 autocasts on CPU and CUDA without scaling; fp16 autocasts on CUDA with a
    ``GradScaler`` per network, since G and D losses have different scales.
    """

    def __init__(self, hw: DictConfig, device: torch.device):
        self.dtype = DTYPES[getattr(hw.precision, "value", hw.precision)]
        if self.dtype is torch.float16 and device.type != "cuda":
            raise ConfigError("hardware.precision=fp16 needs CUDA; on CPU use hardware.precision=bf16")
        self.device = device
        self.channels_last = bool(hw.channels_last)

    def scalers(self, players) -> dict[str, torch.amp.GradScaler]:
        """One scaler per player (their losses have different scales); disabled unless fp16."""
        fp16 = self.dtype is torch.float16
        return {name: torch.amp.GradScaler(self.device.type, enabled=fp16) for name in players}

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def prepare(self, module: torch.nn.Module, compile: bool) -> None:
        """Move a network to the device (and NHWC layout); compile it in place so state_dict keys stay plain."""
        module.to(self.device)
        if self.channels_last:
            module.to(memory_format=torch.channels_last)
        if compile:
            module.compile()

    def batch(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if not self.channels_last:
            return batch
        return {k: v.contiguous(memory_format=torch.channels_last) if v.dim() == 4 else v for k, v in batch.items()}
