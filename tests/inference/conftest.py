"""Fixtures for inference tests: a tiny fused DU-Net bundle and a synthetic head.

The network is far narrower than the paper's so a 32³ window costs well under 0.1 s on one
core; the semantics under test do not depend on the width.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infant_tissue.bundle import default_metadata, save_bundle
from infant_tissue.nn import build_model

#: Narrowest DU-Net the blocks accept (MixACB needs ≥ 4 output channels for its 3:1 split).
TINY = {"init_features": 4, "growth_rate": 4, "bn_size": 2, "layers_per_block": 1}


def tiny_model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_model("dunet-mixacb", deploy=True, **TINY).eval()
    # Non-trivial BatchNorm statistics so every layer does something.
    gen = torch.Generator().manual_seed(seed + 100)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            module.running_mean.copy_(0.1 * torch.randn(module.num_features, generator=gen))
            module.running_var.copy_(1 + 0.2 * torch.rand(module.num_features, generator=gen))
    return model


def tiny_metadata(**extra):
    return default_metadata(
        name="tiny",
        architecture={"name": "dunet-mixacb", "kwargs": TINY, "fused": True},
        **extra,
    )


@pytest.fixture(autouse=True)
def _one_thread():
    # The CI machine is shared: one intra-op thread keeps timings stable and avoids OpenMP
    # oversubscription with other jobs.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_models():
    return [tiny_model(seed) for seed in (1, 2, 3)]


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory, tiny_models):
    path = tmp_path_factory.mktemp("bundles") / "tiny3"
    return save_bundle(path, tiny_models, tiny_metadata())


@pytest.fixture(scope="session")
def tiny_bundle_1(tmp_path_factory, tiny_models):
    path = tmp_path_factory.mktemp("bundles") / "tiny1"
    return save_bundle(path, tiny_models[:1], tiny_metadata())


def synthetic_head(shape=(40, 48, 36), seed=0):
    """An ellipsoidal 'brain' with noisy intensities and zero background (T1w, T2w)."""
    rng = np.random.default_rng(seed)
    grid = np.indices(shape, dtype=np.float64)
    centre = (np.array(shape, dtype=np.float64) - 1)[:, None, None, None] / 2
    radius = np.sqrt((((grid - centre) / (centre * 0.8)) ** 2).sum(0))
    brain = radius < 1
    t1 = np.where(brain, 100 + 20 * rng.standard_normal(shape) + 60 * (1 - radius), 0)
    t2 = np.where(brain, 80 + 20 * rng.standard_normal(shape) + 40 * radius, 0)
    return np.clip(t1, 0, None) * brain, np.clip(t2, 0, None) * brain
