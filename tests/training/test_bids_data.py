"""Training inputs from BIDS + manual dseg derivatives (the phantom generator's raw form)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infant_tissue.cli.main import main
from infant_tissue.training.bids_data import (
    find_lookup_table,
    load_bids_subjects,
    read_lookup_table,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def phantom_bids(tmp_path_factory):
    root = tmp_path_factory.mktemp("bids") / "ds"
    main(
        [
            "make-phantoms",
            str(root),
            "--n-subjects",
            "3",
            "--seed",
            "3",
            "--shape",
            "48",
            "56",
            "48",
        ]
    )
    return root


def test_lookup_tables(tmp_path):
    table = tmp_path / "dseg.tsv"
    table.write_text(
        "index\tname\tabbreviation\n1\tGray matter\tGM\n2\tWhite matter\tWM\n3\tCerebrospinal fluid\tCSF\n"
    )
    assert read_lookup_table(table) == {0: 0, 1: 2, 2: 3, 3: 1}
    table.write_text("index\tname\n10\tCSF\n150\tgrey matter\n250\twhite-matter\n")
    assert read_lookup_table(table) == {0: 0, 10: 1, 150: 2, 250: 3}
    table.write_text("index\tname\n1\tGM\n2\tWM\n3\tCSF\n4\tCerebellum\n")
    with pytest.raises(ValueError, match="4 Cerebellum"):
        read_lookup_table(table)
    table.write_text("index\tname\n1\tGM\n2\tWM\n")
    with pytest.raises(ValueError, match="one row each"):
        read_lookup_table(table)


def test_lookup_table_inheritance(phantom_bids):
    deriv = phantom_bids / "derivatives" / "manual"
    dseg = next(deriv.rglob("*_desc-manual_dseg.nii.gz"))
    assert find_lookup_table(dseg, deriv) == dseg.with_name(dseg.name.replace(".nii.gz", ".tsv"))
    dseg.with_name(dseg.name.replace(".nii.gz", ".tsv")).unlink()
    assert find_lookup_table(dseg, deriv) == deriv / "desc-manual_dseg.tsv"


def test_sessions_on_the_model_grid(phantom_bids):
    subjects = load_bids_subjects(phantom_bids, phantom_bids / "derivatives" / "manual")
    assert len(subjects) == 3
    for name, subject in subjects.items():
        assert name.startswith("sub-") and subject.image.shape[0] == 2
        assert subject.image.shape[1:] == subject.label.shape == subject.brain.shape
        assert set(np.unique(subject.label)) == {0, 1, 2, 3}
        t1z, t2z = subject.image
        assert np.all(t1z[~subject.brain] == 0)  # skull-stripped to the labelled brain
        # the T2w (stored on another grid with a rigid offset) was registered: CSF is bright in
        # T2w and dark in T1w voxel by voxel, which a misaligned T2w would smear away
        csf, wm = subject.label == 1, subject.label == 3
        assert t2z[csf].mean() > t2z[wm].mean() + 0.8, name
        assert t1z[csf].mean() < t1z[wm].mean() - 0.8, name


def test_train_command_on_bids(phantom_bids, tmp_path):
    run = tmp_path / "run"
    code = main(
        [
            "train", str(phantom_bids), "--derivatives", str(phantom_bids / "derivatives/manual"),
            "--out", str(run), "--arch-kwargs", '{"init_features": 8, "growth_rate": 4}',
            "--patch-size", "16", "--batch-size", "2", "--epochs", "1",
            "--patches-per-epoch", "4", "--folds", "3", "--fold", "0", "--no-progress",
        ]
    )  # fmt: skip
    assert code == 0
    config = json.loads((run / "config.json").read_text())
    assert config["labels"].endswith("manual")
    assert len(config["validation_subjects"]) == 1 and len(config["training_subjects"]) == 2
    assert (run / "model.safetensors").is_file()


def test_bids_input_needs_derivatives(phantom_bids, tmp_path, capsys):
    assert main(["train", str(phantom_bids), "--out", str(tmp_path / "r")]) == 64
    assert "--derivatives" in capsys.readouterr().err


def test_train_fuse_run_evaluate_end_to_end(
    phantom_bids, tmp_path, standin_templateflow, monkeypatch
):
    """train (BIDS + manual dseg) -> fuse -> BIDS-App participant -> evaluate against the dseg.

    The manual dseg labels the cerebrum only, so the trained bundle's input domain is 'cerebrum'
    and the app removes cerebellum and brain stem (templates from the phantom stand-in home)."""
    monkeypatch.setenv("TEMPLATEFLOW_HOME", str(standin_templateflow))
    manual = phantom_bids / "derivatives" / "manual"
    run, bundle, out = tmp_path / "run", tmp_path / "bundle", tmp_path / "out"
    assert main(
        ["train", str(phantom_bids), "--derivatives", str(manual), "--out", str(run),
         "--arch-kwargs", '{"init_features": 8, "growth_rate": 4}', "--patch-size", "16",
         "--batch-size", "2", "--epochs", "2", "--patches-per-epoch", "4", "--no-progress"]
    ) == 0  # fmt: skip
    assert main(["fuse", str(run), "--out", str(bundle)]) == 0
    assert main(
        [str(phantom_bids), str(out), "participant", "--participant-label", "01",
         "--skull-stripped", "--models", str(bundle), "--inference-mode", "fast",
         "--device", "cpu", "--nprocs", "1", "--no-reports", "-w", str(tmp_path / "work")]
    ) == 0  # fmt: skip
    pred = next(out.rglob("sub-01*_space-T1w_dseg.nii.gz"))
    truth = next(manual.rglob("sub-01*_desc-manual_dseg.nii.gz"))
    table = tmp_path / "scores.tsv"
    assert main(
        ["evaluate", "--pred", str(pred), "--truth", str(truth), "--labels", "nipreps",
         "--metrics", "dice", "--out", str(table)]
    ) == 0  # fmt: skip
    rows = table.read_text().splitlines()
    assert rows[0].split("\t")[:3] == ["subject", "tissue", "metric"]
    assert sorted(r.split("\t")[1] for r in rows[1:]) == ["CSF", "GM", "WM"]
