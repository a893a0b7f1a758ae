"""Each backbone's own training schedule and bundle settings, from its paper (one table).

:class:`~infant_tissue.training.config.TrainingConfig`'s dataclass defaults are the DU-Net's
(3D-MASNet, seed 000 Table 1); :func:`training_defaults` gives the fields every other backbone
changes, so ``infant-tissue train --arch NAME`` trains NAME with its paper's schedule and a config
file or a flag overrides any number. Sources (``shared/specs/seed-systems.md``):

* **BuiNet** (seed 000 Table 1 + its release code ``train_v2.py``): batch 4, 64³, 20,000
  iterations, Adam (β 0.97, 0.999), lr 2e-4 × 0.1 every 5,000 iterations, weight decay 6e-4.
  Written as 80 epochs × 1,000 patches (250 iterations each), lr × 0.1 at ¼, ½ and ¾ of them.
* **3D-UNet**, **CC-3D-FCN** (Table 1): batch 10, 32³, 80 epochs × 5,000 patches, Adam,
  lr 3e-4 / 1e-4 / 1e-5 / 1e-6 for epochs 1-20 / 21-40 / 41-60 / 61-80.
* **NLU-Net** (Table 1 + its TF ``configure.py``): batch 5, 32³, 80 × 5,000, Adam lr 1e-3
  constant, weight decay 2e-6 (TF ``wd · Σ l2_loss`` = PyTorch's coupled ``weight_decay``).
* **Multi-stream FCN** (seed 001 §4.1): 64³ patches, per-patch z-score, SGD momentum 0.9,
  weight decay 0.005, lr 1e-3 halved every 3,000 of 10,000 iterations, deep supervision
  (α 1, 0.67, 0.33), rotations about z and flips of y. Batch not given: **4** (chosen); written as
  100 epochs × 400 patches (100 iterations), lr halved at 0.3, 0.6 and 0.9 of them.
* **InfiNet** (seed 002 §3): one network per view, whole slices, batch 8, SGD momentum 0.95,
  lr 0.01 × 0.1 every 10 epochs, Generalized Dice loss with fixed training-set weights; 70 epochs
  (the public code; the paper trains "until convergence"). An epoch is 2,000 random slices
  (chosen: about the brain slices of 8 iSeg subjects in one view).
* **MixNet** (seed 004 §3.2): Nesterov momentum 0.99, lr 2e-4 halved at 0.2, 0.4, 0.6, 0.75,
  0.8, 0.85, 0.9 and 0.95 of the epochs, L2 weight decay 1e-3, cross-entropy; epochs and batch
  not given: 250 and 4 (the authors' later code). Augmentation of the paper not implemented.
* **DAM-AL** (seed 003 §3.2): batch 8 of 32³, SGD with warm restarts: 50 periods of 200 epochs,
  lr 0.01 × 0.1 every 40 epochs of a period; attention + Dice loss. Momentum 0.9 and 80 patches
  per epoch are chosen (not given).

Initialisation is each constructor's (Xavier for CC-3D-FCN, He for the others, seed 000 §2.2).
"""

from __future__ import annotations

import copy
from typing import Any

#: Fractions of the epochs at which MixNet halves its learning rate (seed 004 §3.2)
_MIXNET_MILESTONES = [0.2, 0.4, 0.6, 0.75, 0.8, 0.85, 0.9, 0.95]

_SEED000_UNET = dict(
    patch_size=32,
    batch_size=10,
    epochs=80,
    patches_per_epoch=5000,
    adam_eps=1e-8,
    weight_decay=0.0,
    lr_schedule="multistep",
    lr_max=3e-4,
    lr_milestones=[0.25, 0.5, 0.75],
    lr_gammas=[1 / 3, 0.1, 0.1],  # 3e-4, 1e-4, 1e-5, 1e-6
)

#: family -> TrainingConfig fields that differ from the DU-Net's defaults
TRAINING_DEFAULTS: dict[str, dict[str, Any]] = {
    "dunet": {},
    "buinet": dict(
        patch_size=64,
        batch_size=4,
        epochs=80,
        patches_per_epoch=1000,
        adam_betas=[0.97, 0.999],
        adam_eps=1e-8,
        weight_decay=6e-4,
        weight_decay_mode="coupled",
        lr_schedule="multistep",
        lr_max=2e-4,
        lr_milestones=[0.25, 0.5, 0.75],
        lr_gammas=[0.1, 0.1, 0.1],
    ),
    "unet3d": _SEED000_UNET,
    "cc3dfcn": _SEED000_UNET,
    "nlunet": dict(
        patch_size=32,
        batch_size=5,
        epochs=80,
        patches_per_epoch=5000,
        adam_eps=1e-8,
        weight_decay=2e-6,
        weight_decay_mode="coupled",
        lr_schedule="constant",
        lr_max=1e-3,
    ),
    "msfcn": dict(
        patch_size=64,
        batch_size=4,
        epochs=100,
        patches_per_epoch=400,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=0.005,
        weight_decay_mode="coupled",
        lr_schedule="multistep",
        lr_max=1e-3,
        lr_milestones=[0.3, 0.6, 0.9],
        lr_gammas=[0.5, 0.5, 0.5],
        loss="deep-supervision",
        normalisation="zscore-nonzero+patch",
        augment=True,
        augmentation="rot90z-flipy",
    ),
    "infinet": dict(
        view="axial",
        batch_size=8,
        epochs=70,
        patches_per_epoch=2000,
        optimizer="sgd",
        momentum=0.95,
        weight_decay=0.0,
        lr_schedule="step",
        lr_max=0.01,
        lr_step=10,
        lr_gamma=0.1,
        lr_period=0,
        loss="gdl",
    ),
    "mixnet": dict(
        view="axial",
        batch_size=4,
        epochs=250,
        patches_per_epoch=2000,
        optimizer="sgd",
        momentum=0.99,
        nesterov=True,
        weight_decay=1e-3,
        weight_decay_mode="coupled",
        lr_schedule="multistep",
        lr_max=2e-4,
        lr_milestones=list(_MIXNET_MILESTONES),
        lr_gammas=[0.5] * len(_MIXNET_MILESTONES),
    ),
    "damal": dict(
        patch_size=32,
        batch_size=8,
        epochs=10000,
        patches_per_epoch=80,
        optimizer="sgd",
        momentum=0.9,
        weight_decay=0.0,
        lr_schedule="step",
        lr_max=0.01,
        lr_step=40,
        lr_gamma=0.1,
        lr_period=200,
        loss="damal",
    ),
}

#: family -> bundle settings written by ``fuse`` (the inference side of each paper)
BUNDLE_DEFAULTS: dict[str, dict[str, Any]] = {
    # seed 001 §4.1: overlapping 64³ patches (step 32, chosen), then "morphological operations
    # to remove isolated small volumes and internal holes" (26-connected, islands < 100 voxels)
    "msfcn": dict(
        stride=32,
        postprocess={
            "largest_component": True,
            "min_island": 100,
            "holes": True,
            "connectivity": 3,
        },
    ),
    # MixNet fuses its views 1:1:4 (axial = "transverse" ×4) on anisotropic data; 1:1:1 here
    "mixnet": dict(view_weights={"axial": 1.0, "coronal": 1.0, "sagittal": 1.0}),
    "infinet": dict(view_weights={"axial": 1.0, "coronal": 1.0, "sagittal": 1.0}),
}


def family(architecture: str) -> str:
    """``buinet-mixacb`` -> ``buinet``, ``msfcn-context`` -> ``msfcn``, ``mixnet-v2`` -> ``mixnet``."""
    return str(architecture).split("-", 1)[0]


def training_defaults(architecture: str) -> dict[str, Any]:
    """The config fields of ``architecture``'s paper schedule (``{}`` for the DU-Net; unknown
    names get ``{}`` too, and fail later where the network is built)."""
    return copy.deepcopy(TRAINING_DEFAULTS.get(family(architecture), {}))


def bundle_defaults(architecture: str) -> dict[str, Any]:
    """Inference settings of ``architecture``'s paper for its bundles (stride, post-processing,
    view weights); ``{}`` where the product's defaults apply."""
    return copy.deepcopy(BUNDLE_DEFAULTS.get(family(architecture), {}))
