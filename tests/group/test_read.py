"""Reading one session: table and sidecar checks, and the contract with the participant level."""

from __future__ import annotations

import json

import numpy as np
import pytest

from infant_tissue.group.read import (
    VolumeTableError,
    read_session_table,
    read_session_volumes,
)

from .fakes import VOXEL_MM3, volume_table

GOOD = volume_table({"GM": 1000, "WM": 800, "CSF": 200})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: "", "empty file"),
        (lambda t: t.replace("volume_pv_mm3", "pv_mm3"), "header lacks column(s) volume_pv_mm3"),
        (lambda t: t.replace("tissue\tlabel", "tissue\ttissue"), "duplicate column(s) tissue"),
        (lambda t: t.replace("\nCSF\t3", "\nCSF\t1"), "CSF has label '1', expected '3'"),
        (
            lambda t: t.replace("\nWM\t2\t800", "\nWM\t2\t800.5"),
            "line 3 voxels: '800.5' is not a whole",
        ),
        (lambda t: t.replace("\nGM\t1\t1000\t512.000", "\nGM\t1\t1000\t-512"), "is negative"),
        (lambda t: t.replace("\nGM\t1\t1000\t512.000", "\nGM\t1\t1000\tnan"), "is not finite"),
        (lambda t: t.replace("\nGM\t1\t1000\t512.000", "\nGM\t1\t1000\t600"), "brain volume_mm3"),
        (lambda t: t.replace("\nGM\t1\t1000", "\nGM\t1\t1001"), "brain voxels 2000 is not the sum"),
        (lambda t: t.split("\nCSF")[0] + "\n", "no row for CSF"),
        (lambda t: t + "GM\t1\t1\t0.512\t0.5\n", "line 6: second row for GM"),
        (lambda t: t + "WMH\t4\t1\t0.5\t0.5\n", "unknown tissue 'WMH'"),
        (lambda t: t.replace("\nWM\t2\t800\t", "\nWM\t2\t"), "line 3: 4 fields, the header has 5"),
        (lambda t: t.replace("409.600\t405.504", "409.600\tn/a"), "n/a for some rows only"),
        (
            lambda t: t.replace("\nCSF\t3\t200\t102.400", "\nCSF\t3\t0\t102.400").replace(
                "2000", "1800"
            ),
            "CSF has 0 voxels but volume",
        ),
    ],
)
def test_session_table_errors(tmp_path, edit, message):
    path = tmp_path / "sub-01_desc-tissue_volumes.tsv"
    path.write_text(edit(GOOD))
    with pytest.raises(VolumeTableError) as info:
        read_session_table(path)
    assert message in str(info.value) and str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_session_table_accepts_extra_columns_and_na_pv(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text(
        "label\ttissue\tvoxels\tvolume_mm3\tvolume_pv_mm3\textra\n"
        "1\tGM\t1000\t512\tn/a\tx\n"
        "2\tWM\t800\t409.6\tn/a\tx\n"
        "3\tCSF\t200\t102.4\tn/a\tx\n"
        "n/a\tbrain\t2000\t1024\tn/a\tx\n"
    )
    voxels, volume, pv = read_session_table(path)
    assert voxels == {"GM": 1000, "WM": 800, "CSF": 200, "brain": 2000}
    assert volume == {"GM": 512.0, "WM": 409.6, "CSF": 102.4, "brain": 1024.0}
    assert set(pv.values()) == {None}


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        (None, "JSON sidecar of the volume table not found"),
        ("{not json", "not valid JSON"),
        ([1], "expected a JSON object"),
        ({"Subject": "01", "Session": None}, "missing key(s) AgeMonths"),
        ({"Subject": "02", "Session": None, "AgeMonths": 6}, "Subject is '02', expected '01'"),
        ({"Subject": "sub-01", "Session": "ses-1", "AgeMonths": 6}, "Session is 'ses-1'"),
        ({"Subject": "01", "Session": None, "AgeMonths": "6"}, "is not a number or null"),
        ({"Subject": "01", "Session": None, "AgeMonths": -1}, "not a non-negative number"),
    ],
)
def test_sidecar_errors(tmp_path, meta, message):
    path = tmp_path / "sub-01_desc-tissue_volumes.tsv"
    path.write_text(GOOD)
    if meta is not None:
        text = meta if isinstance(meta, str) else json.dumps(meta)
        path.with_suffix(".json").write_text(text)
    with pytest.raises(VolumeTableError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_session_volumes(path, "01", None)


def test_sidecar_prefixed_labels_accepted(tmp_path):
    path = tmp_path / "sub-01_ses-A_desc-tissue_volumes.tsv"
    path.write_text(GOOD)
    meta = {"Subject": "sub-01", "Session": "ses-A", "AgeMonths": 6, "AgeSource": "cli"}
    path.with_suffix(".json").write_text(json.dumps(meta))
    rec = read_session_volumes(path, "01", "A")
    assert (rec.age_months, rec.age_source, rec.model_bundle) == (6.0, "cli", None)
    assert rec.measures()["gm_fraction"] == pytest.approx(0.5)


def test_reads_the_participant_level_writer(tmp_path):
    """Contract with the participant level: its volume table parses and matches its counts."""
    from infant_tissue.anat import volumes as derivatives

    rng = np.random.default_rng(0)
    dseg = rng.integers(0, 4, size=(10, 10, 10))
    probs = np.moveaxis(rng.dirichlet(np.ones(4), size=(10, 10, 10)), -1, 0)
    rows = derivatives.tissue_volumes(dseg, probs, np.diag([0.8, 0.8, 0.8, 1.0]))
    path = tmp_path / "sub-01_desc-tissue_volumes.tsv"
    path.write_text(derivatives.volumes_tsv(rows))
    voxels, volume, pv = read_session_table(path)
    for tissue, label in (("GM", 1), ("WM", 2), ("CSF", 3)):
        assert voxels[tissue] == int((dseg == label).sum())
        assert volume[tissue] == pytest.approx(voxels[tissue] * VOXEL_MM3, abs=1e-3)
    assert voxels["brain"] == int((dseg > 0).sum())
    assert pv["brain"] == pytest.approx(probs[1:].sum() * VOXEL_MM3, abs=1e-2)
