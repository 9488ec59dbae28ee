"""Device, mixed precision and kernel settings from the ``hardware`` config."""

from __future__ import annotations

import contextlib
import functools
import inspect

import torch
from omegaconf import DictConfig

from gan_lab.errors import ConfigError

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def auto_precision(device: torch.device) -> tuple[str, str]:
    """What ``hardware.precision=auto`` runs in on ``device``, and why.

    bf16 on a CPU that computes bf16 dot products natively (AMX tiles, or AVX512-BF16): there oneDNN's bf16
    matmuls and convolutions run several times faster than fp32 (scripts/bench_train.py --compare measures
    both). Elsewhere bf16 is emulated through fp32 conversions, so fp32 is faster; CUDA keeps fp32 with TF32.
    """
    if device.type == "cuda":
        return "fp32", "CUDA: fp32 (TF32 matmuls with hardware.tf32=true); ask for bf16 with hardware=bf16"
    if device.type != "cpu":
        return "fp32", f"{device.type}: fp32"
    if torch.cpu._is_amx_tile_supported():
        return "bf16", "the CPU has AMX tiles, native bf16 matmuls"
    if torch.cpu._is_avx512_bf16_supported():
        return "bf16", "the CPU has AVX512-BF16, native bf16 dot products"
    return "fp32", "the CPU has neither AMX nor AVX512-BF16, so bf16 would be emulated and slower"


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
    """Autocast context and per-network gradient scalers for one run (``precision`` is what it runs in,
    ``auto`` resolved; ``why`` says why).

    bf16 autocasts on CPU and CUDA without scaling; fp16 autocasts on CUDA with a
    ``GradScaler`` per network, since G and D losses have different scales.
    """

    def __init__(self, hw: DictConfig, device: torch.device):
        self.precision = getattr(hw.precision, "value", hw.precision)
        self.why = f"hardware.precision={self.precision}"
        if self.precision == "auto":
            self.precision, why = auto_precision(device)
            self.why += f": {why}"
        self.dtype = DTYPES[self.precision]
        if self.dtype is torch.float16 and device.type != "cuda":
            raise ConfigError("hardware.precision=fp16 needs CUDA; on CPU use hardware.precision=bf16")
        self.device = device
        self.channels_last = bool(hw.channels_last)
        self.fused_optim = bool(hw.fused_optim)

    def optimizer(self, make: functools.partial, params) -> torch.optim.Optimizer:
        """``make(params)``, with ``fused=True`` when ``hardware.fused_optim`` and the optimizer has a fused kernel
        (unless the config sets ``fused``): one pass over each parameter instead of a kernel per arithmetic op.
        On the CPU, Adam's step on 50M contiguous fp32 parameters takes 26 ms fused and 128 ms unfused;
        channels-last weights are copied by the fused kernel, which narrows the gap (README, Performance)."""
        fusable = "fused" in inspect.signature(make.func).parameters and "fused" not in make.keywords
        return make(params, fused=True) if self.fused_optim and fusable else make(params)

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
