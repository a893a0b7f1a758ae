"""The sliding-window loop: batches of windows in, weighted softmax sums out.

:class:`SlidingWindowInferer` holds one network on one device and adds the softmax outputs of a
list of windows into a probability accumulator. It knows nothing of bundles, members or votes.

Two ways to move windows, chosen by device:

``"slice"`` (CPU)
    One slice copy per window into a reused batch buffer and one slice add per window into the
    accumulator. On a CPU these are memcpy-speed and cheaper than index arithmetic.
``"index"`` (CUDA)
    The whole batch is gathered with one advanced-indexing kernel from the device-resident
    volume and scattered with one ``index_add_`` using precomputed flat voxel offsets, so a batch
    costs a fixed handful of kernel launches and never touches the host. The loop never
    synchronises, so the host queues the next batch while the GPU computes the current one.

Both give the same sums (the ``index`` path's atomic adds may change the last bit).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn

from .devices import check_batch_size, check_precision, precision_context
from .progress import Progress

LOGGER = logging.getLogger(__name__)

#: Voxels per CPU batch when no batch size is given: eight 32³ windows (≈1 GB of activations at
#: full width), one tile of 64³ or more. On 2 cores, 8 windows ran 10% faster per window than 4
#: and 2.2× faster than 1 (benchmarks/README.md).
CPU_BATCH_VOXELS = 8 * 32**3

#: Largest window (voxels) run on the CPU: activations cost ≈ 4 kB per voxel at full width in
#: fp32, so 112³ stays near 6 GB and the 8 GB peak-RSS budget holds (issue 3, item 6).
CPU_MAX_WINDOW_VOXELS = 112**3

#: Upper bound on GPU memory the inference may use (issue 3: ≤ 16 GB).
GPU_MEMORY_BUDGET = 16 * 1024**3


class SlidingWindowInferer:
    """Evaluate a network on windows of a volume and accumulate weighted probabilities.

    Parameters
    ----------
    network
        Maps ``(N, C, d, h, w)`` to logits ``(N, K, d, h, w)``; moved to ``device`` and put in
        eval mode. Its weights may be swapped later (``load_state_dict``) — layout and device
        are preserved by PyTorch's in-place copy.
    device
        Where everything runs.
    batch_size
        Windows per forward pass; ``None`` chooses: on CPU :data:`CPU_BATCH_VOXELS` worth of
        windows, on CUDA the largest batch that fits the free memory (probed once per window
        size, capped by :data:`GPU_MEMORY_BUDGET`).
    precision
        ``"fp32"`` (strict, default), ``"tf32"``, ``"bf16"`` or ``"fp16"`` (autocast).
    channels_last
        Use ``channels_last_3d`` activations (``None``: yes). On CUDA it lets cuDNN use NDHWC
        tensor-core kernels; on a 2-core AVX2 CPU oneDNN ran the full-width DU-Net 19% faster.
    transfer
        ``"slice"``, ``"index"`` or ``None`` (CPU: slice, CUDA: index); see the module docstring.
    window_transform
        Applied to every batch of windows before the network (a bundle's per-window
        normalisation, :func:`~.normalisation.window_transform`); ``None``: nothing.
    """

    def __init__(
        self,
        network: nn.Module,
        device: torch.device,
        *,
        batch_size: int | None = None,
        precision: str = "fp32",
        channels_last: bool | None = None,
        transfer: str | None = None,
        window_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        check_batch_size(batch_size)
        if transfer not in (None, "slice", "index"):
            raise ValueError(f"transfer must be 'slice' or 'index', got {transfer!r}")
        self.device = device
        self.precision = check_precision(precision, device)
        self.channels_last = True if channels_last is None else bool(channels_last)
        self.transfer = transfer or ("index" if device.type == "cuda" else "slice")
        self.batch_size = batch_size
        self.window_transform = window_transform
        network = network.to(device).eval()
        if self.channels_last:
            network = network.to(memory_format=torch.channels_last_3d)
        self.network = network
        self._probed: dict[tuple[int, ...], int] = {}

    # ------------------------------------------------------------------ batch size
    def batch_size_for(self, patch: Sequence[int], channels: int) -> int:
        """Windows per forward pass for windows of size ``patch``."""
        if self.batch_size is not None:
            return int(self.batch_size)
        voxels = math.prod(patch)
        if self.device.type != "cuda":
            return max(1, CPU_BATCH_VOXELS // voxels)
        key = (*patch, channels)
        if key not in self._probed:
            self._probed[key] = self._probe_cuda_batch(tuple(patch), channels)
            LOGGER.info("batch size %d for windows %s on %s", self._probed[key], patch, self.device)
        return self._probed[key]

    def _probe_cuda_batch(self, patch: tuple[int, ...], channels: int) -> int:
        # Measure the peak memory of batches of 1 and 2 windows: the difference is the cost of
        # one more window, the rest is fixed workspace. Then fill 80% of what is free, within
        # the 16 GB budget less what is already allocated (weights, volume, accumulators).
        torch.cuda.synchronize(self.device)
        peaks = []
        for n in (1, 2):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
            base = torch.cuda.memory_allocated(self.device)
            x = torch.zeros((n, channels, *patch), device=self.device)
            self._forward(x)
            torch.cuda.synchronize(self.device)
            peaks.append(torch.cuda.max_memory_allocated(self.device) - base)
            del x
        per_window = max(peaks[1] - peaks[0], 1)
        fixed = max(peaks[0] - per_window, 0)
        free, _total = torch.cuda.mem_get_info(self.device)
        budget = min(0.8 * free, GPU_MEMORY_BUDGET - torch.cuda.memory_allocated(self.device))
        size = int((budget - fixed) // per_window)
        return max(1, min(size, 1024))

    # ------------------------------------------------------------------ forward
    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        """Softmax probabilities in float32 for one batch."""
        if self.window_transform is not None:
            batch = self.window_transform(batch)
        if self.channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), precision_context(self.precision, self.device):
            logits = self.network(batch)
        return torch.softmax(logits.float(), dim=1)

    # ------------------------------------------------------------------ public
    @torch.inference_mode()
    def accumulate(
        self,
        image: torch.Tensor,
        starts: np.ndarray,
        patch: Sequence[int],
        out: torch.Tensor,
        importance: torch.Tensor | None = None,
        progress: Progress | None = None,
    ) -> None:
        """Add ``importance * softmax(network(window))`` of every window into ``out``.

        Parameters
        ----------
        image
            ``(C, D, H, W)`` float32 on the inferer's device.
        starts
            ``(N, 3)`` window starts; every window must lie inside the image.
        patch
            Window extent per axis (each a multiple of 8 for the DU-Net).
        out
            ``(K, D, H, W)`` float32 accumulator on the device, added to in place.
        importance
            Optional ``patch``-shaped weights (``None``: weight 1, the reference).
        progress
            Updated with the number of windows after each batch.
        """
        starts = np.asarray(starts, dtype=np.int64).reshape(-1, 3)
        if image.ndim != 4 or out.ndim != 4 or tuple(image.shape[1:]) != tuple(out.shape[1:]):
            raise ValueError(
                f"image (C, D, H, W) {tuple(image.shape)} and accumulator (K, D, H, W) "
                f"{tuple(out.shape)} must share D, H, W"
            )
        patch = tuple(int(p) for p in patch)
        if len(starts) == 0:
            return
        limit = np.array(image.shape[1:]) - np.array(patch)
        if (starts < 0).any() or (starts > limit).any():
            raise ValueError(
                f"a window of size {patch} falls outside the image {tuple(image.shape[1:])}"
            )
        if importance is not None:
            importance = importance.to(self.device, torch.float32)
        batch = self.batch_size_for(patch, image.shape[0])
        if self.transfer == "index":
            self._accumulate_index(image, starts, patch, out, importance, batch, progress)
        else:
            self._accumulate_slice(image, starts, patch, out, importance, batch, progress)

    def _accumulate_slice(self, image, starts, patch, out, importance, batch, progress) -> None:
        px, py, pz = patch
        layout = torch.channels_last_3d if self.channels_last else torch.contiguous_format
        buffer = torch.empty(
            (batch, image.shape[0], *patch),
            dtype=image.dtype,
            device=image.device,
            memory_format=layout,
        )
        for first in range(0, len(starts), batch):
            chunk = starts[first : first + batch].tolist()
            inputs = buffer[: len(chunk)]
            for i, (x, y, z) in enumerate(chunk):
                inputs[i].copy_(image[:, x : x + px, y : y + py, z : z + pz])
            probs = self._forward(inputs)
            if importance is not None:
                probs.mul_(importance)
            for i, (x, y, z) in enumerate(chunk):
                out[:, x : x + px, y : y + py, z : z + pz].add_(probs[i])
            if progress is not None:
                progress.update(len(chunk))

    def _accumulate_index(self, image, starts, patch, out, importance, batch, progress) -> None:
        channels, classes = image.shape[0], out.shape[0]
        offsets, flat_starts = flat_offsets(tuple(image.shape[1:]), patch, starts, image.device)
        image_flat = image.reshape(channels, -1)
        out_flat = out.view(classes, -1)
        pad = self.device.type == "cuda"  # keep one batch shape for cuDNN autotuning
        for first in range(0, len(starts), batch):
            lin = flat_starts[first : first + batch]
            real = lin.shape[0]
            if pad and real < batch:
                lin = torch.cat([lin, lin[:1].expand(batch - real)])
            index = (lin[:, None] + offsets[None, :]).reshape(-1)
            inputs = image_flat[:, index].view(channels, lin.shape[0], *patch).transpose(0, 1)
            probs = self._forward(inputs)[:real]
            if importance is not None:
                probs = probs * importance
            values = probs.transpose(0, 1).reshape(classes, -1)
            out_flat.index_add_(1, index[: real * offsets.numel()], values)
            if progress is not None:
                progress.update(real)

    @torch.inference_mode()
    def window_weights(
        self,
        shape: Sequence[int],
        starts: np.ndarray,
        patch: Sequence[int],
        importance: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Sum of window weights per voxel, float32 ``(D, H, W)`` on the device.

        With constant weighting this is the reference's count map. It does not depend on the
        network, so it is computed once per subject and shared by all members.
        """
        weights = torch.zeros(tuple(shape), dtype=torch.float32, device=self.device)
        patch = tuple(int(p) for p in patch)
        starts = np.asarray(starts, dtype=np.int64).reshape(-1, 3)
        one = (
            torch.ones(patch, dtype=torch.float32, device=self.device)
            if importance is None
            else importance.to(self.device, torch.float32)
        )
        if self.transfer == "index" and len(starts):
            offsets, flat_starts = flat_offsets(tuple(shape), patch, starts, self.device)
            flat = weights.view(-1)
            values = one.reshape(-1)
            chunk = max(1, 2**23 // offsets.numel())  # ≤ 64 MB of int64 indices at a time
            for first in range(0, len(flat_starts), chunk):
                lin = flat_starts[first : first + chunk]
                index = (lin[:, None] + offsets[None, :]).reshape(-1)
                flat.index_add_(0, index, values.repeat(lin.shape[0]))
        else:
            px, py, pz = patch
            for x, y, z in starts.tolist():
                weights[x : x + px, y : y + py, z : z + pz].add_(one)
        return weights


def flat_offsets(
    shape: Sequence[int], patch: Sequence[int], starts: np.ndarray, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Flat (C-order) voxel offsets inside a window and flat window starts, int64 on ``device``.

    The voxels of window ``i`` are ``flat_starts[i] + offsets`` in ``volume.reshape(-1)``.
    """
    d, h, w = (int(s) for s in shape)
    px, py, pz = (int(p) for p in patch)
    ax = torch.arange(px, device=device) * (h * w)
    ay = torch.arange(py, device=device) * w
    az = torch.arange(pz, device=device)
    offsets = (ax[:, None, None] + ay[None, :, None] + az[None, None, :]).reshape(-1)
    s = torch.as_tensor(np.asarray(starts, dtype=np.int64).reshape(-1, 3), device=device)
    flat_starts = s[:, 0] * (h * w) + s[:, 1] * w + s[:, 2]
    return offsets, flat_starts
