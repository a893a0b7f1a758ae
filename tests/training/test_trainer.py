"""The training loop for real on tiny data: loss decreases, resume is exact, train -> fuse -> bundle."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from infant_tissue.bundle import load_bundle
from infant_tissue.cli.main import main
from infant_tissue.training import TrainingConfig
from infant_tissue.training.runs import load_run
from infant_tissue.training.trainer import train

from .synthetic import shell_subject, write_iseg_folder

TINY = dict(
    architecture_kwargs={"init_features": 8, "growth_rate": 4},
    patch_size=16,
    batch_size=4,
    patches_per_epoch=8,
    lr_max=3e-3,
    lr_min=3e-3,
    validation_patches=8,
    num_threads=1,
    seed=3,
)


@pytest.fixture(scope="module")
def subjects():
    return [shell_subject(s, size=28) for s in (1, 2)], [shell_subject(9, size=28)]


def test_loss_decreases_and_log_is_written(tmp_path, subjects):
    training, validation = subjects
    result = train(
        TrainingConfig(epochs=6, **TINY),
        training,
        validation,
        tmp_path,
        device="cpu",
        progress=False,
    )
    losses = [row["loss"] for row in result.history]
    assert losses[-1] < 0.7 * losses[0], losses
    with (tmp_path / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [int(float(r["epoch"])) for r in rows] == list(range(6))
    assert {"lr", "loss", "val_dice_csf", "val_dice_gm", "val_dice_wm"} <= set(rows[0])
    info = json.loads((tmp_path / "model.json").read_text())
    assert info["architecture"]["fused"] is False and len(info["sha256"]) == 64


def test_resume_after_a_kill_is_bit_exact(tmp_path, subjects):
    training, validation = subjects
    config = TrainingConfig(epochs=3, augment=True, **TINY)
    train(config, training, validation, tmp_path / "a", device="cpu", progress=False)

    def kill(epoch, _row):
        if epoch == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(
            config,
            training,
            validation,
            tmp_path / "b",
            device="cpu",
            progress=False,
            on_epoch_end=kill,
        )
    assert not (tmp_path / "b" / "model.safetensors").exists()
    with pytest.raises(FileExistsError, match="--resume"):
        train(config, training, validation, tmp_path / "b", device="cpu", progress=False)
    result = train(
        config, training, validation, tmp_path / "b", device="cpu", progress=False, resume=True
    )
    assert result.epochs_run == 1 and len(result.history) == 3
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="different configuration"):
        other = TrainingConfig(epochs=4, augment=True, **TINY)
        train(
            other, training, validation, tmp_path / "b", device="cpu", progress=False, resume=True
        )


def test_cli_train_fuse_reproduces_the_trained_model(tmp_path, capsys):
    data = tmp_path / "iseg"
    write_iseg_folder(data, seeds=[1, 2, 3, 4], size=28)
    (tmp_path / "cfg.yaml").write_text(
        "architecture_kwargs: {init_features: 8, growth_rate: 4}\npatch_size: 16\nbatch_size: 2\n"
        "patches_per_epoch: 4\nepochs: 2\nbn_recalibration_batches: 2\n"
    )
    runs = []
    for fold in (0, 1):
        run = tmp_path / f"run{fold}"
        code = main(
            [
                "train",
                str(data),
                "--out",
                str(run),
                "--config",
                str(tmp_path / "cfg.yaml"),
                "--folds",
                "2",
                "--fold",
                str(fold),
                "--seed",
                "5",
                "--omp-nthreads",
                "1",
                "--no-progress",
                "--input-domain",
                "whole-brain",
            ]
        )
        assert code == 0, capsys.readouterr().err
        runs.append(run)
    info = json.loads((runs[0] / "model.json").read_text())
    assert len(info["training_subjects"]) == 2 and len(info["validation_subjects"]) == 2
    assert info["input_domain"] == "whole-brain"
    assert main(["fuse", *map(str, runs), "--out", str(tmp_path / "bundle")]) == 0
    bundle = load_bundle(tmp_path / "bundle")
    assert bundle.input_domain == "whole-brain"  # the runs' domain reaches the bundle
    assert len(bundle) == 2 and bundle.metadata["architecture"]["fused"] is True
    assert (
        bundle.metadata["provenance"]["runs"][1]["validation_subjects"] == info["training_subjects"]
    )
    x = torch.randn(2, 2, 16, 16, 16)
    for i, run in enumerate(runs):
        trained, _ = load_run(run)
        with torch.no_grad():
            err = (bundle.build_member(i)(x) - trained(x)).abs().max().item()
        assert err < 1e-4


def test_cli_errors(tmp_path, capsys):
    assert main(["train", str(tmp_path / "missing"), "--out", str(tmp_path / "r")]) == 66
    assert "missing" in capsys.readouterr().err
    assert main(["train", str(tmp_path), "--out", str(tmp_path / "r"), "--patch-size", "20"]) == 64
    assert main(["fuse", str(tmp_path), "--out", str(tmp_path / "b")]) == 66
    assert "not a finished training run" in capsys.readouterr().err


def test_fine_tuning_starts_from_the_run(tmp_path, subjects):
    training, validation = subjects
    first = train(
        TrainingConfig(epochs=2, **TINY), training, validation, tmp_path / "a", progress=False
    )
    tuned = train(
        TrainingConfig(epochs=1, **TINY),
        training,
        validation,
        tmp_path / "b",
        progress=False,
        init_from=tmp_path / "a",
    )
    # starting from trained weights, the first fine-tuning epoch beats the first scratch epoch
    assert tuned.history[0]["loss"] < first.history[0]["loss"]
    info = json.loads((tmp_path / "b" / "model.json").read_text())
    assert (
        info["init_from"]["sha256"] == json.loads((tmp_path / "a/model.json").read_text())["sha256"]
    )
    wider = {**TINY, "architecture_kwargs": {"init_features": 16, "growth_rate": 4}}
    with pytest.raises(ValueError, match="trained as dunet-mixacb"):
        train(TrainingConfig(epochs=1, **wider), training, validation, tmp_path / "c",
              progress=False, init_from=tmp_path / "a")  # fmt: skip
