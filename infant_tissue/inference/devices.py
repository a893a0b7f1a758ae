"""Device selection, numeric precision and thread settings for inference.

Kept apart from the sliding-window loop so that a wrong device string fails before any weights
are read, and so that global PyTorch switches (thread count, TF32) are changed only inside a
context that restores them.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator

import torch

from .._types import PRECISIONS, DeviceSpec, Precision, check_device_spec

LOGGER = logging.getLogger(__name__)

_CUDA = re.compile(r"^cuda(?::(\d+))?$")


def resolve_device(device: DeviceSpec | torch.device = "auto") -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"`` into a usable ``torch.device``.

    ``"auto"`` picks the first CUDA device when PyTorch can see one and the CPU otherwise (with a
    log line saying so). Asking for CUDA explicitly when none is usable is an error rather than
    a silent CPU run, because a CPU run of the faithful ensemble takes hours instead of seconds.

    Raises
    ------
    ValueError
        Unknown device string, CUDA not available, or a device index out of range.
    """
    if isinstance(device, torch.device):
        device = str(device)
    spec = check_device_spec(device)
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        LOGGER.warning(
            "no CUDA device visible to PyTorch: running on the CPU (slower; see --device)"
        )
        return torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    match = _CUDA.match(spec)
    if not torch.cuda.is_available():
        build = "a CPU-only PyTorch build" if torch.version.cuda is None else "no visible GPU"
        raise ValueError(
            f"device {device!r} requested but CUDA is not available ({build}); "
            "use device='cpu' or 'auto'"
        )
    index = int(match.group(1) or torch.cuda.current_device())
    count = torch.cuda.device_count()
    if index >= count:
        raise ValueError(f"device {device!r} requested but only {count} CUDA device(s) visible")
    return torch.device("cuda", index)


def check_batch_size(batch_size: int | None) -> int | None:
    """``None`` (automatic) or a positive integer; anything else is a ``ValueError``."""
    if batch_size is not None and (int(batch_size) != batch_size or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    return batch_size


def check_precision(precision: Precision, device: torch.device) -> Precision:
    """Validate ``precision``; fp16/bf16 on the CPU are allowed but logged as slow there."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if device.type == "cpu" and precision in ("bf16", "fp16"):
        LOGGER.warning(
            "%s autocast on the CPU changes results and is rarely faster without AMX/AVX512-BF16",
            precision,
        )
    return precision


@contextlib.contextmanager
def precision_context(precision: str, device: torch.device) -> Iterator[None]:
    """Autocast for bf16/fp16; strict IEEE fp32 convolutions for ``"fp32"`` on CUDA.

    PyTorch lets cuDNN use TF32 for fp32 convolutions by default, which changes probabilities by
    about 1e-3; ``"fp32"`` turns that off for the duration so the faithful mode stays faithful,
    ``"tf32"`` keeps it on. cuDNN autotuning is enabled because every batch has the same shape.
    """
    with contextlib.ExitStack() as stack:
        if device.type == "cuda":
            stack.enter_context(_cudnn_settings(tf32=precision != "fp32"))
        if precision in ("bf16", "fp16"):
            dtype = torch.bfloat16 if precision == "bf16" else torch.float16
            stack.enter_context(torch.autocast(device_type=device.type, dtype=dtype))
        yield


@contextlib.contextmanager
def _cudnn_settings(tf32: bool) -> Iterator[None]:
    cudnn = torch.backends.cudnn
    old_benchmark = cudnn.benchmark
    conv = getattr(cudnn, "conv", None)
    if conv is not None and hasattr(conv, "fp32_precision"):
        old = conv.fp32_precision
        conv.fp32_precision = "tf32" if tf32 else "ieee"
        restore = lambda: setattr(conv, "fp32_precision", old)  # noqa: E731
    else:  # older PyTorch
        old = cudnn.allow_tf32
        cudnn.allow_tf32 = tf32
        restore = lambda: setattr(cudnn, "allow_tf32", old)  # noqa: E731
    cudnn.benchmark = True
    try:
        yield
    finally:
        cudnn.benchmark = old_benchmark
        restore()


@contextlib.contextmanager
def num_threads(threads: int | None) -> Iterator[None]:
    """Use ``threads`` intra-op CPU threads inside the block (``None``: leave as is).

    The caller owns the CPU budget (``--omp-nthreads`` of the BIDS-App), so the engine never
    picks a thread count by itself; the previous value is restored afterwards.
    """
    if threads is None:
        yield
        return
    if int(threads) != threads or threads < 1:
        raise ValueError(f"num_threads must be a positive integer, got {threads!r}")
    previous = torch.get_num_threads()
    torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)
