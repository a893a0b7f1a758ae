"""Training throughput: patches/s of the MixACB training form vs the baseline DU-Net.

Both networks take the same random batches through forward, cross-entropy + Keras L2, backward and
an Adam step, in one run on one device, so the printed ratio is the training-time cost of MixACB.

    python benchmarks/training.py                      # paper widths, CPU, a few steps
    python benchmarks/training.py --device cuda --steps 20 --batch-size 16
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch

from infant_tissue.nn import build_model, count_parameters
from infant_tissue.training.losses import cross_entropy, keras_l2_penalty, regularised_kernels

REDUCED = {"init_features": 16, "growth_rate": 8}


def patches_per_second(name, kwargs, args, device) -> tuple[float, int]:
    torch.manual_seed(0)
    model = build_model(name, **kwargs).to(device).train()
    kernels = regularised_kernels(model)
    opt = torch.optim.Adam(model.parameters(), lr=3e-4, eps=1e-7)
    s = args.patch_size
    x = torch.randn(args.batch_size, 2, s, s, s, device=device)
    y = torch.randint(0, 4, (args.batch_size, s, s, s), device=device)

    def step():
        loss = cross_entropy(model(x), y) + keras_l2_penalty(kernels, 1e-4)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return args.steps * args.batch_size / (time.perf_counter() - start), count_parameters(model)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--width", choices=("full", "reduced"), default="full")
    p.add_argument("--patch-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=2)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    kwargs = {} if args.width == "full" else REDUCED
    cpu = platform.processor() or platform.machine()
    print(
        f"device {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else cpu}), "
        f"{os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(
        f"width {args.width}, patch {args.patch_size}³, batch {args.batch_size}, {args.steps} timed steps"
    )
    rows = {}
    for name in ("dunet-mixacb", "dunet-baseline"):
        rows[name] = patches_per_second(name, kwargs, args, device)
        print(f"  {name:<15} {rows[name][1]:>10,} params  {rows[name][0]:8.3f} patches/s")
    ratio = rows["dunet-baseline"][0] / rows["dunet-mixacb"][0]
    print(f"MixACB training form is {ratio:.2f}x slower than the baseline per patch")
    epoch = 1000 / rows["dunet-mixacb"][0]
    print(
        f"one reference epoch (1000 patches): {epoch / 60:.1f} min; 500 epochs: {500 * epoch / 3600:.1f} h"
    )


if __name__ == "__main__":
    main()
