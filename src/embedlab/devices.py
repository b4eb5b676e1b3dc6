"""Where a job encodes and in which precision: plain decisions (CUDA's state passed in, or read from torch
at the call), so they are tested on machines without a GPU. ``encode.device`` (configs/encode/) is the
one setting; null follows ``trainer.accelerator``."""

from __future__ import annotations

import os
import platform
import re
from typing import Any

from embedlab.errors import ConfigError

DEVICE_SETTINGS = ("cpu", "cuda", "auto")  # and cuda:<index>
ACCELERATOR_DEVICES = {"cpu": "cpu", "gpu": "cuda", "cuda": "cuda", "auto": "auto"}  # trainer.accelerator ->
AUTOCAST_DTYPES = {"bf16-autocast": "bfloat16", "fp16-autocast": "float16"}  # encode precision -> torch dtype


def check_device_setting(setting: Any) -> str:
    """``setting`` if it names a device embedlab encodes on, else a ConfigError listing the choices."""
    value = str(setting)
    if value in DEVICE_SETTINGS or re.fullmatch(r"cuda:\d+", value):
        return value
    raise ConfigError(
        f"encode.device={setting} is unknown. Choose cpu, cuda, cuda:<index> or auto "
        "(null: follow trainer.accelerator)."
    )


def follow_trainer(accelerator: Any) -> str:
    """``encode.device=null``: the device setting that matches ``trainer.accelerator``."""
    if str(accelerator) in ACCELERATOR_DEVICES:
        return ACCELERATOR_DEVICES[str(accelerator)]
    raise ConfigError(
        f"encode.device=null follows trainer.accelerator, which is {accelerator}: embedlab encodes on cpu "
        "or cuda only. Fix: set encode.device=cpu (or cuda)."
    )


def resolve_device(setting: str, *, cuda_count: int | None = None, local_rank: int | None = None) -> str:
    """``cpu`` or ``cuda:<i>`` for this process. ``auto``: CUDA when a GPU is visible; ``cuda`` /
    ``auto`` pick GPU ``LOCAL_RANK`` modulo the visible count (a task that sees one GPU uses cuda:0).
    ``cuda_count`` / ``local_rank`` default to torch's and the environment's."""
    value = check_device_setting(setting)
    if value == "cpu":
        return "cpu"
    if cuda_count is None:
        import torch

        cuda_count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda_count == 0 and value == "auto":
        return "cpu"
    if cuda_count == 0:
        raise ConfigError(
            f"encode.device={value} (or trainer.accelerator=gpu, which it follows when null) but torch sees "
            "no CUDA GPU: a CPU-only torch build, a job without a GPU, or CUDA_VISIBLE_DEVICES empty. Fix: "
            "encode.device=cpu or auto, or run on a GPU with a CUDA torch (README: Bring your own torch)."
        )
    if ":" in value:
        if int(value[5:]) >= cuda_count:
            raise ConfigError(f"encode.device={value} but only {cuda_count} GPU(s) are visible (cuda:0 ..).")
        return value
    rank = int(os.environ.get("LOCAL_RANK", 0)) if local_rank is None else local_rank
    return f"cuda:{rank % cuda_count}"


def encode_precision(
    device: str, requested: str, backend: str = "fast", *, bf16_supported: bool | None = None
) -> str:
    """The precision an encode really runs in. Reference backend: float32 everywhere (the published
    numbers). Fast backend on the CPU: as requested (bf16 weights by default). On CUDA a bf16 request
    becomes bf16 autocast, or fp16 autocast on a GPU without bf16 (pre-Ampere); fp32 stays fp32."""
    if backend != "fast":
        return "fp32"
    if not str(device).startswith("cuda") or requested == "fp32":
        return requested
    if bf16_supported is None:
        import torch

        bf16_supported = torch.cuda.is_bf16_supported()
    return "bf16-autocast" if bf16_supported else "fp16-autocast"


def device_name(device: Any) -> str:
    """The GPU's name (``torch.cuda.get_device_name``) or the CPU's model (/proc/cpuinfo, else platform)."""
    if str(device).startswith("cuda"):
        import torch

        return str(torch.cuda.get_device_name(torch.device(str(device))))
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def trainer_device(trainer: Any) -> dict[str, Any]:
    """``meta.device.train``: where and how Lightning trained (its resolved accelerator and precision)."""
    root = str(trainer.strategy.root_device)
    accelerator = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    return {
        "accelerator": accelerator,
        "device": root,
        "name": device_name(root),
        "devices": int(trainer.num_devices),
        "precision": str(trainer.precision),
    }
