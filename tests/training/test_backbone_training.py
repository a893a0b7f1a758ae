"""Training every backbone: the papers' schedules as defaults, one step and an exact resume per
network, seed 001's out-of-fold context, and fusing runs into bundles (2-D views, two stages)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from infant_tissue.bundle import load_bundle
from infant_tissue.cli.main import main
from infant_tissue.inference.context import context_maps
from infant_tissue.training import TrainingConfig
from infant_tissue.training.context import add_context
from infant_tissue.training.data import Subject
from infant_tissue.training.ensemble import export_ensemble
from infant_tissue.training.optim import build_optimizer, learning_rate
from infant_tissue.training.trainer import train

from ..backbone_fixtures import SMALL, VIEWS, tiny_config, untrained_run
from .synthetic import shell_subject, write_iseg_folder


def lrs(arch: str, epochs) -> list[float]:
    config = TrainingConfig.for_architecture(arch)
    return [learning_rate(config, e) for e in epochs]


def test_seed000_table1_schedules():
    bui = TrainingConfig.for_architecture("buinet-mixacb")
    assert (bui.patch_size, bui.batch_size, bui.optimizer, bui.adam_betas) == (
        64,
        4,
        "adam",
        [0.97, 0.999],
    )
    # 20,000 iterations of batch 4, lr x0.1 every 5,000 iterations
    assert bui.epochs * bui.patches_per_epoch // bui.batch_size == 20_000
    assert lrs("buinet-mixacb", [0, 19, 20, 39, 40, 60]) == pytest.approx(
        [2e-4, 2e-4, 2e-5, 2e-5, 2e-6, 2e-7]
    )
    for arch in ("unet3d-baseline", "cc3dfcn-mixacb"):
        c = TrainingConfig.for_architecture(arch)
        assert (c.patch_size, c.batch_size, c.epochs, c.patches_per_epoch) == (32, 10, 80, 5000)
        assert lrs(arch, [0, 19, 20, 40, 60, 79]) == pytest.approx(
            [3e-4, 3e-4, 1e-4, 1e-5, 1e-6, 1e-6]
        )
    nlu = TrainingConfig.for_architecture("nlunet-baseline")
    assert (nlu.patch_size, nlu.batch_size, nlu.epochs, nlu.patches_per_epoch) == (32, 5, 80, 5000)
    assert set(lrs("nlunet-mixacb", range(80))) == {1e-3}
    dunet = TrainingConfig.for_architecture("dunet-mixacb")
    assert dunet == TrainingConfig()  # the dataclass defaults are the DU-Net's


def test_seed001_to_004_schedules():
    fcn = TrainingConfig.for_architecture("msfcn")
    assert (fcn.patch_size, fcn.optimizer, fcn.momentum, fcn.weight_decay) == (64, "sgd", 0.9, 5e-3)
    assert (fcn.loss, fcn.normalisation) == ("deep-supervision", "zscore-nonzero+patch")
    # 10,000 iterations, lr halved every 3,000
    assert fcn.epochs * fcn.patches_per_epoch // fcn.batch_size == 10_000
    assert lrs("msfcn", [0, 29, 30, 60, 90]) == pytest.approx([1e-3, 1e-3, 5e-4, 2.5e-4, 1.25e-4])
    inf = TrainingConfig.for_architecture("infinet")
    assert (inf.batch_size, inf.momentum, inf.loss, inf.view) == (8, 0.95, "gdl", "axial")
    assert lrs("infinet", [0, 9, 10, 20]) == pytest.approx([1e-2, 1e-2, 1e-3, 1e-4])
    mix = TrainingConfig.for_architecture("mixnet-v3")
    assert (mix.momentum, mix.nesterov, mix.weight_decay, mix.lr_max) == (0.99, True, 1e-3, 2e-4)
    halvings = [round(math.log2(2e-4 / lr)) for lr in lrs("mixnet-v3", range(250))]
    changes = [e for e in range(1, 250) if halvings[e] != halvings[e - 1]]
    assert changes == [50, 100, 150, 188, 200, 213, 225, 238] and halvings[-1] == 8
    dam = TrainingConfig.for_architecture("damal")
    assert (dam.batch_size, dam.patch_size, dam.epochs, dam.loss) == (8, 32, 10_000, "damal")
    rates = lrs("damal", range(600))
    assert [e for e in range(600) if rates[e] == 0.01] == [
        e for e in range(600) if e % 200 < 40
    ]  # 0.01 at 0, 200, 400 ...
    assert all(rates[e] == pytest.approx(1e-6) for e in range(160, 200))


@pytest.mark.parametrize(
    ("arch", "kind", "settings"),
    [
        ("dunet-mixacb", torch.optim.Adam, {"eps": 1e-7, "weight_decay": 0}),
        ("buinet-baseline", torch.optim.Adam, {"betas": (0.97, 0.999), "weight_decay": 6e-4}),
        ("nlunet-mixacb", torch.optim.Adam, {"weight_decay": 2e-6}),
        ("msfcn", torch.optim.SGD, {"momentum": 0.9, "weight_decay": 5e-3}),
        ("infinet", torch.optim.SGD, {"momentum": 0.95, "nesterov": False}),
        ("mixnet-v1", torch.optim.SGD, {"momentum": 0.99, "nesterov": True, "weight_decay": 1e-3}),
        ("damal", torch.optim.SGD, {"momentum": 0.9, "weight_decay": 0}),
    ],
)
def test_optimisers(arch, kind, settings):
    model = torch.nn.Linear(2, 2)
    optimizer = build_optimizer(model, TrainingConfig.for_architecture(arch))
    assert type(optimizer) is kind
    group = optimizer.param_groups[0]
    assert {k: group[k] for k in settings} == settings


@pytest.fixture(scope="module")
def subjects():
    return [shell_subject(s, size=32) for s in (1, 2)], [shell_subject(9, size=32)]


def _with_context(subject: Subject) -> Subject:
    maps = context_maps(subject.label)
    return Subject(
        subject.name, np.concatenate([subject.image, maps]), subject.label, subject.brain
    )


@pytest.mark.parametrize("arch", [a for a in SMALL if a != "dunet-mixacb"])
def test_one_step_and_exact_resume(tmp_path, subjects, arch):
    training, validation = subjects
    if arch == "msfcn-context":
        training, validation = [_with_context(s) for s in training], [_with_context(validation[0])]
    config = tiny_config(arch)
    kwargs = dict(device="cpu", progress=False)
    whole = train(config, training, validation, tmp_path / "a", **kwargs)
    assert len(whole.history) == 2 and all(np.isfinite(r["loss"]) for r in whole.history)

    def kill(epoch, _row):
        if epoch == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, training, validation, tmp_path / "b", on_epoch_end=kill, **kwargs)
    resumed = train(config, training, validation, tmp_path / "b", resume=True, **kwargs)
    assert resumed.epochs_run == 1
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    info = json.loads((tmp_path / "a" / "model.json").read_text())
    assert info["config"]["loss"] == config.loss and info["architecture"]["name"] == arch


def test_geometry_errors(tmp_path, subjects):
    training, _ = subjects
    with pytest.raises(ValueError, match="2-D network: choose a view"):
        train(tiny_config("infinet", view=None), training, [], tmp_path / "a", device="cpu")
    with pytest.raises(ValueError, match="multiple of 16"):
        train(tiny_config("buinet-mixacb", patch_size=24), training, [], tmp_path / "b")
    with pytest.raises(ValueError, match="view must be one of"):
        tiny_config("infinet", view="oblique")


def test_context_comes_from_a_run_that_did_not_see_the_subject(tmp_path, subjects):
    training, _ = subjects
    named = {"a": training[0], "b": training[1]}
    runs = [
        untrained_run(tmp_path / "f0", "msfcn", seed=0, training_subjects=["a"]),
        untrained_run(tmp_path / "f1", "msfcn", seed=1, training_subjects=["b"]),
    ]
    out, record = add_context(named, runs, device=torch.device("cpu"))
    assert record["context_run_by_subject"] == {
        "a": str(runs[1].resolve()),
        "b": str(runs[0].resolve()),
    }
    assert out["a"].image.shape == (5, 32, 32, 32)
    assert np.array_equal(out["a"].image[:2], training[0].image)
    assert out["a"].image[2:].min() >= 0 and out["a"].image[2:].max() <= 1
    with pytest.raises(ValueError, match="seen in training by every"):
        add_context(named, runs[:1], device=torch.device("cpu"))


def test_fuse_groups_2d_runs_by_view(tmp_path):
    runs = [
        untrained_run(tmp_path / f"{v}{k}", "mixnet-v2", seed=k, view=v)
        for k in (0, 1)
        for v in ("sagittal", "axial", "coronal")
    ]
    bundle = export_ensemble(runs, tmp_path / "b", view_weights={"axial": 4})
    assert bundle.dimensions == 2 and bundle.views == list(VIEWS)
    assert bundle.view_weights == {"axial": 4.0, "coronal": 1.0, "sagittal": 1.0}
    assert bundle.metadata["architecture"]["fused"] is False  # a copy, with provenance
    groups = bundle.member_groups()
    assert len(groups) == 2
    assert [bundle.metadata["members"][i]["view"] for i in groups[1].values()] == list(VIEWS)
    with pytest.raises(ValueError, match="same number of runs"):
        export_ensemble(runs[:4], tmp_path / "c")


def test_cli_trains_fcn1_folds_then_fcn2_and_fuses_two_stages(tmp_path, capsys):
    data = tmp_path / "iseg"
    write_iseg_folder(data, seeds=[1, 2], size=32)
    common = ["--arch-kwargs", '{"base_width": 4}', "--patch-size", "16", "--epochs", "1"]
    common += ["--patches-per-epoch", "2", "--batch-size", "2", "--omp-nthreads", "1"]
    common += ["--no-progress", "--folds", "2"]
    fcn1 = []
    for fold in ("0", "1"):
        run = tmp_path / f"fcn1-{fold}"
        assert main(["train", str(data), "--arch", "msfcn", "--out", str(run), "--fold", fold,
                     *common]) == 0  # fmt: skip
        fcn1.append(str(run))
    assert main(["train", str(data), "--arch", "msfcn-context", "--out", str(tmp_path / "fcn2"),
                 "--fold", "0", *common]) == 64  # fmt: skip
    assert "needs --context-from" in capsys.readouterr().err
    assert main(["train", str(data), "--arch", "msfcn-context", "--out", str(tmp_path / "fcn2"),
                 "--fold", "0", "--context-from", *fcn1, *common]) == 0  # fmt: skip
    assert main(["fuse", str(tmp_path / "fcn2"), "--out", str(tmp_path / "bundle")]) == 0
    bundle = load_bundle(tmp_path / "bundle")
    stage = bundle.first_stage()
    assert stage is not None and len(stage) == 2 and stage.architecture["name"] == "msfcn"
    assert bundle.postprocess_options == {
        "largest_component": True,
        "min_island": 100,
        "holes": True,
        "connectivity": 3,
    }
    assert stage.postprocess_options is None
    assert bundle.normalisation_method == "zscore-nonzero+patch"
    assert bundle.metadata["stride"] == [16, 16, 16]  # the paper's 32, at most the patch
    assert main(["train", str(data), "--arch", "msfcn", "--view", "axial", "--out",
                 str(tmp_path / "x")]) == 64  # fmt: skip
    assert "3-D network" in capsys.readouterr().err
