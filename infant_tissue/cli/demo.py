"""``infant-tissue demo``: a self-contained tour of the model core on this machine.

Builds the paper's DU-Net in training form, gives its BatchNorms non-trivial statistics (as a
trained model has), fuses it, checks the fused network against the training form, writes a weight
bundle, reloads it strictly and prints what a user needs to know. Runs on CPU in seconds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ._common import ExitCode, parse_args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="infant-tissue demo", description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="demo-output", help="folder for the demo bundle")
    parser.add_argument("--seed", type=int, default=0)
    args = parse_args(parser, argv)
    if isinstance(args, int):
        return args

    import torch

    from ..bundle import default_metadata, save_bundle
    from ..nn import build_model, count_parameters, fuse_model
    from ..nn.fusion import fusion_error, randomise_batchnorm_

    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train = randomise_batchnorm_(build_model("dunet-mixacb").eval(), seed=args.seed)
    fused = fuse_model(train)
    x = torch.randn(1, 2, 32, 32, 32)
    with torch.no_grad():
        t0 = time.perf_counter()
        ref = train(x)
        t1 = time.perf_counter()
        out = fused(x)
        t2 = time.perf_counter()
    err32 = ((out - ref).abs().max() / ref.abs().max()).item()
    x64 = x[..., :16, :16, :16].double()
    err64 = fusion_error(train.double(), fuse_model(train.double()), x64)

    out_dir = Path(args.out)
    bundle = save_bundle(
        out_dir / "bundle-untrained",
        [fused.float()],
        default_metadata(
            name="demo-untrained",
            architecture={"name": "dunet-mixacb", "kwargs": {}, "fused": True},
            licence="Random weights made by 'infant-tissue demo': not a segmentation model.",
            provenance={"command": "infant-tissue demo"},
        ),
        overwrite=True,
    )
    reloaded = bundle.build_member(0)
    with torch.no_grad():
        same = torch.equal(reloaded(x), out)
    if not same:
        print("infant-tissue demo: error: reloaded bundle differs", file=sys.stderr)
        return ExitCode.FAILED
    print(
        "\n".join(
            [
                "3D-MASNet DU-Net (paper widths), one 32³ window of random T1w/T2w input:",
                f"  parameters  training form {count_parameters(train.float()):,}  "
                f"fused {count_parameters(fused):,}  "
                f"baseline {count_parameters(build_model('dunet-baseline')):,}",
                f"  fusion      max |Δ logits| {err64:.1e} (float64, 16³), "
                f"relative {err32:.1e} (float32, 32³)",
                f"  CPU time    training form {t1 - t0:.2f} s, fused {t2 - t1:.2f} s per window",
                f"  bundle      {bundle.path} (sha256 {bundle.sha256[:16]}…), reloaded strictly: "
                "identical outputs",
                f"  total       {time.perf_counter() - start:.1f} s",
            ]
        )
    )
    return ExitCode.OK
