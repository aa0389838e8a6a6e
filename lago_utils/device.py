"""Where the prior computes, and in what precision: the device flag, bf16 where the device computes it natively
(`LAGO_CPU_BF16` overrides what a CPU counts as), and the CPU's name for the records of timed runs."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from lago_utils.llm import PriorError


def cpu_name() -> str:
    """The CPU's model name (Linux), for the records of timed runs."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


CPU_BF16_VARIABLE = "LAGO_CPU_BF16"  # 1 or 0: take the CPU for one with (1) or without (0) native bf16


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes bf16 natively (AVX512-BF16 or AMX), unless LAGO_CPU_BF16 says otherwise.

    `LAGO_CPU_BF16=0` runs everything as on a CPU without native bf16 (fp32), `LAGO_CPU_BF16=1` as on one
    with it (bf16, emulated where the CPU has no native bf16): the tests take both paths on every CPU.
    """
    setting = os.environ.get(CPU_BF16_VARIABLE, "")
    if setting not in ("", "0", "1"):
        raise PriorError(f"the environment variable {CPU_BF16_VARIABLE} must be 0 or 1 (or unset), got {setting!r}")
    return setting == "1" if setting else torch.ops.mkldnn._is_mkldnn_bf16_supported()


def fast_dtype(device: torch.device) -> torch.dtype:
    """bf16 where the device computes it natively (CUDA, CPUs with AVX512-BF16 or AMX), else fp32.

    On a CPU without native bf16 (AVX2 only), bf16 matrix products are emulated and run several
    times slower than fp32.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise PriorError(f"--device must be auto, cpu or cuda, got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise PriorError(f"--device {device} was asked for but no CUDA GPU is available")
    return torch.device(device)
