"""Reduced-width backbones, their (untrained) runs and bundles, for the backbone tests."""

from __future__ import annotations

from pathlib import Path

import torch

from infant_tissue.nn import build_model
from infant_tissue.training import TrainingConfig
from infant_tissue.training.ensemble import export_ensemble
from infant_tissue.training.runs import save_run

#: Every trainable architecture at a width that runs in a fraction of a second on the CPU.
SMALL: dict[str, dict] = {
    "dunet-mixacb": {"init_features": 8, "growth_rate": 4},
    "buinet-baseline": {
        "init_features": 8,
        "growth_rate": 4,
        "bn_size": 2,
        "block_config": [2, 2, 2, 2],
    },
    "buinet-mixacb": {
        "init_features": 8,
        "growth_rate": 4,
        "bn_size": 2,
        "block_config": [2, 2, 2, 2],
    },
    "unet3d-baseline": {"base_width": 4},
    "unet3d-mixacb": {"base_width": 4},
    "cc3dfcn-baseline": {"widths": [8, 8, 8, 4]},
    "cc3dfcn-mixacb": {"widths": [8, 8, 8, 4]},
    "nlunet-baseline": {"base_width": 4},
    "nlunet-mixacb": {"base_width": 4},
    "msfcn": {"base_width": 4},
    "msfcn-context": {"base_width": 4},
    "infinet": {"features": 8},
    "mixnet-v1": {"features": 8, "pyramid_features": 4},
    "mixnet-v2": {"features": 8, "pyramid_features": 4},
    "mixnet-v3": {"features": 8, "pyramid_features": 4},
    "damal": {"base_width": 4},
}
TWO_D = ("infinet", "mixnet-v1", "mixnet-v2", "mixnet-v3")
VIEWS = ("axial", "coronal", "sagittal")


def patch_for(arch: str) -> int:
    """The smallest training patch each network takes comfortably (DAM-AL's instance norm
    needs more than one voxel at its 1/16 level, BuiNet pools four times)."""
    return 32 if arch.startswith(("buinet", "damal")) else 16


def tiny_config(arch: str, **overrides) -> TrainingConfig:
    """``arch``'s paper schedule at reduced width, for one-step runs."""
    fields = dict(
        architecture_kwargs=SMALL[arch],
        patch_size=patch_for(arch),
        batch_size=2,
        epochs=2,
        patches_per_epoch=2,
        validation_patches=2,
        num_threads=1,
        seed=3,
    )
    if arch in TWO_D:
        fields["view"] = "coronal"
    fields.update(overrides)
    return TrainingConfig.for_architecture(arch, **fields)


def _randomise_batchnorm(model: torch.nn.Module, seed: int) -> None:
    # Non-trivial BN statistics, so fusing is checked against something.
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)


def untrained_run(path: Path, arch: str, seed: int = 0, **meta) -> Path:
    """A run folder as ``train`` writes it, holding a randomly initialised network."""
    torch.manual_seed(seed)
    config = tiny_config(arch, **({"view": meta.pop("view")} if "view" in meta else {}))
    model = build_model(arch, **config.architecture_kwargs).eval()
    _randomise_batchnorm(model, seed)
    info = {"config": config.to_dict(), "training_subjects": [], "validation_subjects": []}
    save_run(path, model, arch, config.architecture_kwargs, {**info, **meta})
    return path


def backbone_bundle(root: Path, arch: str, members: int = 1) -> Path:
    """A bundle of ``arch`` made by ``fuse`` from untrained runs: fused for MixACB networks,
    one network per view for 2-D ones, with its first stage for seed 001's FCN-2."""
    root.mkdir(parents=True, exist_ok=True)
    runs = []
    for k in range(members):
        if arch in TWO_D:
            runs += [
                untrained_run(root / f"run-{k}-{v}", arch, seed=10 * k + i, view=v)
                for i, v in enumerate(VIEWS)
            ]
        elif arch == "msfcn-context":
            first = [untrained_run(root / f"fcn1-{k}", "msfcn", seed=k)]
            runs.append(
                untrained_run(
                    root / f"run-{k}", arch, seed=k, context_from=[str(p.resolve()) for p in first]
                )
            )
        else:
            runs.append(untrained_run(root / f"run-{k}", arch, seed=k))
    return export_ensemble(runs, root / "bundle").path
