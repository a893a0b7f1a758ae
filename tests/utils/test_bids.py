"""BIDS input selection, filters, ages, MNIInfant cohorts and precomputed masks (utils/)."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from infant_tissue.utils.age import read_age_months
from infant_tissue.utils.bids import (
    BidsInputError,
    ParticipantNotFoundError,
    build_layout,
    check_session_images,
    collect_sessions,
)
from infant_tissue.utils.filters import BidsFilterError, load_bids_filters
from infant_tissue.utils.precomputed import find_precomputed_mask
from infant_tissue.utils.templates import MNIINFANT_COHORTS, mniinfant_cohort


@pytest.fixture(scope="module")
def nifti_bytes(tmp_path_factory) -> bytes:
    """A valid 12³ image, written once and copied wherever a dataset needs one."""
    path = tmp_path_factory.mktemp("img") / "tiny.nii.gz"
    data = np.random.default_rng(0).integers(1, 100, size=(12, 12, 12)).astype(np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 0.8, 1.0])), path)
    return path.read_bytes()


@pytest.fixture
def make_bids(tmp_path, nifti_bytes):
    """Build a BIDS tree from relative file names; ``.nii.gz`` files get a real tiny image."""

    def make(files: list[str], tables: dict[str, str] | None = None) -> Path:
        root = tmp_path / "bids"
        root.mkdir(exist_ok=True)
        (root / "dataset_description.json").write_text(
            json.dumps({"Name": "test", "BIDSVersion": "1.9.0"})
        )
        for rel in files:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(nifti_bytes)
        for rel, text in (tables or {}).items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text(text)
        return root

    return make


def _pair(sub: str, ses: str | None = None, extra: str = "") -> list[str]:
    folder = f"sub-{sub}/" + (f"ses-{ses}/" if ses else "") + "anat/"
    prefix = f"sub-{sub}" + (f"_ses-{ses}" if ses else "") + extra
    return [f"{folder}{prefix}_T1w.nii.gz", f"{folder}{prefix}_T2w.nii.gz"]


# --- selection ---------------------------------------------------------------------------------


def test_dataset_without_sessions(make_bids):
    root = make_bids(
        [*_pair("01"), "sub-02/anat/sub-02_T1w.nii.gz", "sub-03/anat/sub-03_T2w.nii.gz"]
    )
    units = collect_sessions(root)
    assert [(u.subject, u.session) for u in units] == [("01", None), ("02", None), ("03", None)]
    one, two, three = units
    assert one.ok and one.t1w.name == "sub-01_T1w.nii.gz" and one.t2w.name == "sub-01_T2w.nii.gz"
    assert one.label == "sub-01" and one.prefix == "sub-01" and one.entities == {"subject": "01"}
    assert not two.ok and two.problems == ["no T2w image for sub-02"]
    assert two.t1w is not None and two.t2w is None
    assert three.problems == ["no T1w image for sub-03"] and three.t1w is None


def test_sessions_are_independent_units(make_bids):
    root = make_bids([*_pair("01", "V01"), "sub-01/ses-V02/anat/sub-01_ses-V02_T1w.nii.gz"])
    layout = build_layout(root)
    units = collect_sessions(root, layout=layout)
    assert [(u.subject, u.session, u.ok) for u in units] == [
        ("01", "V01", True),
        ("01", "V02", False),
    ]
    assert units[0].prefix == "sub-01_ses-V01"
    assert units[0].entities == {"subject": "01", "session": "V01"}
    assert units[1].problems == ["no T2w image for sub-01 ses-V02"]
    assert units[0].t1w.parent.parent.name == "ses-V01"

    only = collect_sessions(root, session_labels=["ses-V02"], layout=layout)
    assert [u.session for u in only] == ["V02"]
    missing = collect_sessions(root, session_labels=["V01", "V03"], layout=layout)
    assert [u.session for u in missing] == ["V01", "V03"]
    assert missing[1].problems == ["session ses-V03 not found for sub-01 (its sessions: V01, V02)"]


def test_participant_labels_with_or_without_prefix(make_bids):
    root = make_bids([*_pair("01"), *_pair("02"), *_pair("10")])
    layout = build_layout(root)
    got = collect_sessions(root, participant_labels=["sub-02", "10", "02"], layout=layout)
    assert [u.subject for u in got] == ["02", "10"]
    with pytest.raises(ParticipantNotFoundError) as info:
        collect_sessions(root, participant_labels=["01", "sub-99"], layout=layout)
    err = info.value
    assert err.missing == ["99"] and err.available == ["01", "02", "10"]
    assert "sub-99 not found" in str(err) and "available: 01, 02, 10" in str(err)
    assert isinstance(err, BidsInputError)


def test_empty_or_missing_dataset(tmp_path, make_bids):
    with pytest.raises(BidsInputError, match="not found"):
        collect_sessions(tmp_path / "nowhere")
    root = make_bids([])
    with pytest.raises(ParticipantNotFoundError, match="no participants"):
        collect_sessions(root)


def test_several_runs_first_in_natural_order_with_warning(make_bids):
    runs = [f"sub-01/anat/sub-01_run-{r}_T1w.nii.gz" for r in (10, 2, 1)]
    root = make_bids([*runs, "sub-01/anat/sub-01_T2w.nii.gz", "sub-01/anat/sub-01_T2w.json"])
    (unit,) = collect_sessions(root, age_override=6)
    assert unit.ok
    assert [p.name for p in unit.t1w_candidates] == [
        "sub-01_run-1_T1w.nii.gz",
        "sub-01_run-2_T1w.nii.gz",
        "sub-01_run-10_T1w.nii.gz",
    ]
    assert unit.t1w.name == "sub-01_run-1_T1w.nii.gz"
    (warning,) = unit.warnings
    assert warning.startswith("3 T1w images for sub-01: sub-01_run-1_T1w.nii.gz, ")
    assert "sub-01_run-10_T1w.nii.gz" in warning and "using sub-01_run-1_T1w.nii.gz" in warning
    assert [p.name for p in unit.t2w_candidates] == ["sub-01_T2w.nii.gz"]  # not the .json


def test_filter_file_selects_acquisition_and_run(make_bids, tmp_path):
    root = make_bids(
        [
            "sub-01/anat/sub-01_acq-fast_run-1_T1w.nii.gz",
            "sub-01/anat/sub-01_acq-mprage_run-1_T1w.nii.gz",
            "sub-01/anat/sub-01_acq-mprage_run-2_T1w.nii.gz",
            "sub-01/anat/sub-01_T2w.nii.gz",
            "sub-01/anat/sub-01_acq-spc_T2w.nii.gz",
        ]
    )
    layout = build_layout(root)
    spec = tmp_path / "filters.json"
    spec.write_text(json.dumps({"T1w": {"acq": "mprage", "run": 2}, "t2w": {"acquisition": None}}))
    filters = load_bids_filters(spec)
    assert filters == {"t1w": {"acquisition": "mprage", "run": 2}, "t2w": {"acquisition": None}}
    (unit,) = collect_sessions(root, bids_filters=filters, layout=layout, age_override=6)
    assert unit.t1w.name == "sub-01_acq-mprage_run-2_T1w.nii.gz"
    assert unit.t2w.name == "sub-01_T2w.nii.gz"
    assert unit.warnings == []

    (unit,) = collect_sessions(root, bids_filters={"t2w": {"acquisition": "*"}}, layout=layout)
    assert unit.t2w.name == "sub-01_acq-spc_T2w.nii.gz"

    (unit,) = collect_sessions(
        root, bids_filters={"t1w": {"acquisition": "mp2rage"}}, layout=layout
    )
    (problem,) = unit.problems
    assert problem.startswith(
        'no T1w image for sub-01 matches the filter {"acquisition": "mp2rage"}'
    )
    assert "sub-01_acq-fast_run-1_T1w.nii.gz" in problem


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "invalid JSON at line 1"),
        ("[1, 2]", "must be a JSON object"),
        ('{"bold": {"task": "rest"}}', "unknown key 'bold'"),
        ('{"t1w": ["mprage"]}', "must map to an object"),
        ('{"t1w": {"acquisiton": "mprage"}}', "'acquisiton': unknown BIDS entity"),
        ('{"t1w": {"subject": "01"}}', "--participant-label"),
        ('{"t1w": {"suffix": "T2w"}}', "must be 'T1w'"),
        ('{"t1w": {"datatype": "func"}}', "only 'anat'"),
        ('{"t2w": {"extension": ".mgz"}}', ".nii and .nii.gz"),
        ('{"t1w": {"run": {"a": 1}}}', "must be a string, an integer"),
        ('{"t1w": {"run": true}}', "must be a string, an integer"),
        ('{"t1w": {"acq": "a", "acquisition": "b"}}', "given twice"),
    ],
)
def test_filter_file_errors_name_the_file(tmp_path, content, message):
    spec = tmp_path / "my_filters.json"
    spec.write_text(content)
    with pytest.raises(BidsFilterError) as info:
        load_bids_filters(spec)
    assert str(info.value).startswith(str(spec)) and message in str(info.value)


def test_filter_file_missing(tmp_path):
    with pytest.raises(BidsFilterError, match="filter file not found"):
        load_bids_filters(tmp_path / "nope.json")


def test_invalid_filters_rejected_by_collect(make_bids):
    root = make_bids(_pair("01"))
    with pytest.raises(BidsFilterError):
        collect_sessions(root, bids_filters={"t1w": {"bogus": 1}})


def test_check_session_images_records_bad_files(make_bids):
    root = make_bids(_pair("01"))
    t2w = root / "sub-01/anat/sub-01_T2w.nii.gz"
    t2w.write_bytes(t2w.read_bytes()[:200])
    (unit,) = collect_sessions(root, age_override=6)
    assert unit.ok
    assert check_session_images(unit) is False
    (problem,) = unit.problems
    assert str(t2w) in problem and "corrupt or truncated" in problem


# --- age ---------------------------------------------------------------------------------------


def test_age_from_sessions_tsv_in_weeks(make_bids):
    root = make_bids(
        [*_pair("01", "V01"), *_pair("01", "V02")],
        {
            "sub-01/sub-01_sessions.tsv": "session_id\tage\nses-V01\t26\nses-V02\t52\n",
            "sub-01/sub-01_sessions.json": json.dumps({"age": {"Units": "weeks"}}),
            "participants.tsv": "participant_id\tage\nsub-01\t0.5\n",
            "participants.json": json.dumps({"age": {"Units": "years"}}),
        },
    )
    v01, v02 = collect_sessions(root)
    assert v01.age_months == pytest.approx(26 * 7 / (365.25 / 12))  # 5.98
    assert v01.age_source == "sub-01_sessions.tsv column age (weeks)"
    assert v01.warnings == []
    assert v02.age_months == pytest.approx(52 * 7 / (365.25 / 12))  # 11.96
    # participants.tsv (6 months) disagrees with the session-specific 11.96 months: warned.
    (warning,) = v02.warnings
    assert "disagree" in warning and "participants.tsv" in warning


def test_age_from_participants_tsv(make_bids):
    root = make_bids(
        [*_pair("01"), *_pair("02"), *_pair("03")],
        {
            "participants.tsv": "participant_id\tage\tsex\nsub-01\t0.5\tF\nsub-02\tn/a\tM\n",
            "participants.json": json.dumps({"age": {"Description": "age", "Units": "Years"}}),
        },
    )
    one, two, three = collect_sessions(root)
    assert one.age_months == pytest.approx(6.0) and "participants.tsv" in one.age_source
    assert one.warnings == []
    for unit in (two, three):
        assert unit.age_months is None and unit.age_source == "unknown"
        (warning,) = unit.warnings
        assert warning.startswith(f"no age found for sub-{unit.subject}")
        assert "--age-months" in warning


def test_age_columns_with_units_in_their_name_and_cells(tmp_path):
    (tmp_path / "participants.tsv").write_text(
        "participant_id\tage_days\nsub-01\t182.625\nsub-02\tsoon\n"
    )
    assert read_age_months(tmp_path, "01")[:2] == (
        pytest.approx(6.0),
        "participants.tsv column age_days (days)",
    )
    age, _, warnings = read_age_months(tmp_path, "sub-02")
    assert age is None and "'soon'" in warnings[0] and "not a number" in warnings[0]
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-01\t7 months\n")
    assert read_age_months(tmp_path, "01")[0] == pytest.approx(7.0)


def test_age_without_units_is_not_guessed(tmp_path):
    (tmp_path / "participants.tsv").write_text("participant_id\tage\nsub-01\t6\n")
    age, source, warnings = read_age_months(tmp_path, "01")
    assert age is None and source == "unknown"
    assert "has no unit" in warnings[0] and "participants.json" in warnings[0]
    (tmp_path / "participants.json").write_text(json.dumps({"age": {"Units": "furlongs"}}))
    _, _, warnings = read_age_months(tmp_path, "01")
    assert "'furlongs' is not a postnatal age" in warnings[0]


def test_age_from_scans_tsv_row_of_the_image(make_bids):
    root = make_bids(
        _pair("01", "V01"),
        {
            "sub-01/ses-V01/sub-01_ses-V01_scans.tsv": (
                "filename\tage_months\nanat/sub-01_ses-V01_T2w.nii.gz\t4\n"
                "anat/sub-01_ses-V01_T1w.nii.gz\t5\n"
            ),
        },
    )
    (unit,) = collect_sessions(root)
    assert unit.age_months == 5.0 and unit.age_source.startswith("sub-01_ses-V01_scans.tsv")


def test_age_override_takes_precedence_and_reports_disagreement(make_bids):
    root = make_bids(
        [*_pair("01"), *_pair("02")],
        {"participants.tsv": "participant_id\tage_months\nsub-01\t9\n"},
    )
    one, two = collect_sessions(root, age_override=6)
    assert (one.age_months, one.age_source) == (6.0, "--age-months")
    (warning,) = one.warnings
    assert "--age-months 6 for sub-01 overrides 9 months from participants.tsv" in warning
    assert (two.age_months, two.warnings) == (6.0, [])


@pytest.mark.parametrize(("age", "warned"), [(2.9, True), (3.0, False), (12.0, False), (18, True)])
def test_age_outside_model_range_warns(tmp_path, age, warned):
    (tmp_path / "participants.tsv").write_text(f"participant_id\tage_months\nsub-01\t{age}\n")
    _, _, warnings = read_age_months(tmp_path, "01")
    assert bool(warnings) is warned
    if warned:
        assert "outside 3–12 months" in warnings[0] and "6-month-olds" in warnings[0]


# --- MNIInfant cohorts -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "cohort"),
    [
        (-2, 1),
        (0, 1),
        (2, 1),
        (2.01, 2),
        (5, 2),
        (6, 3),
        (8, 3),
        (9, 4),
        (12, 5),
        (24, 8),
        (60, 11),
        (72, 11),
        (None, 3),
    ],
)
def test_mniinfant_cohort(age, cohort):
    assert mniinfant_cohort(age) == cohort


def test_mniinfant_cohort_rejects_nan():
    with pytest.raises(ValueError):
        mniinfant_cohort(float("nan"))


def test_mniinfant_table_matches_templateflow_description():
    # The templateflow package ships the template descriptions (no download needed).
    spec = importlib.util.find_spec("templateflow")
    assert spec is not None and spec.submodule_search_locations  # a hard dependency
    skel = Path(next(iter(spec.submodule_search_locations))) / "conf" / "templateflow-skel.zip"
    assert skel.is_file(), f"{skel}: the pinned templateflow should ship its skeleton"
    with zipfile.ZipFile(skel) as archive:
        desc = json.loads(archive.read("tpl-MNIInfant/template_description.json"))
    table = {int(k): tuple(v["age"]) for k, v in desc["cohort"].items() if v["units"] == "months"}
    assert table == {c: (lo, hi) for c, lo, hi in MNIINFANT_COHORTS}


# --- precomputed masks -------------------------------------------------------------------------


def test_find_precomputed_mask(tmp_path):
    deriv = tmp_path / "nibabies"
    anat = deriv / "sub-01" / "ses-V01" / "anat"
    anat.mkdir(parents=True)
    for name in (
        "sub-01_ses-V01_desc-brain_mask.nii.gz",
        "sub-01_ses-V01_space-T1w_desc-brain_mask.nii.gz",
        "sub-01_ses-V01_space-MNIInfant_cohort-3_desc-brain_mask.nii.gz",
        "sub-01_ses-V01_space-T1w_desc-brain_mask.json",
        "sub-01_ses-V01_space-T1w_desc-aseg_dseg.nii.gz",
    ):
        (anat / name).write_bytes(b"")
    assert find_precomputed_mask(deriv, "sub-01", "ses-V01").name == (
        "sub-01_ses-V01_space-T1w_desc-brain_mask.nii.gz"
    )
    (anat / "sub-01_ses-V01_space-T1w_desc-brain_mask.nii.gz").unlink()
    assert find_precomputed_mask(deriv, "01", "V01").name == "sub-01_ses-V01_desc-brain_mask.nii.gz"
    assert find_precomputed_mask(deriv, "01", "V02") is None
    assert find_precomputed_mask(deriv, "01") is None
    assert find_precomputed_mask(deriv, "02", "V01") is None

    flat = deriv / "sub-02" / "anat"
    flat.mkdir(parents=True)
    for run in (1, 2):
        (flat / f"sub-02_run-{run}_space-T1w_desc-brain_mask.nii.gz").write_bytes(b"")
    t1w = tmp_path / "bids/sub-02/anat/sub-02_run-2_T1w.nii.gz"
    assert find_precomputed_mask(deriv, "02", t1w=t1w).name.startswith("sub-02_run-2_")
    assert find_precomputed_mask(deriv, "02").name.startswith("sub-02_run-1_")


# --- real infant BIDS tree (../shared, when present) -------------------------------------------


def test_real_infant_tree_reports_every_session(shared_dir):
    root = shared_dir / "real-infant" / "bids"
    if not root.is_dir():
        pytest.skip("real-infant/bids is not present")
    units = collect_sessions(root)
    labels = [u.label for u in units]
    assert len(labels) == len(set(labels)) == 10
    for unit in units:
        assert not unit.ok, unit.label
        assert unit.problems == [f"no T2w image for {unit.label}"] or unit.problems == [
            f"no T1w image for {unit.label}"
        ]
    t2w_only = [u for u in units if u.t1w is None]
    assert [u.label for u in t2w_only] == ["sub-0009 ses-V01"]

    sub1 = [u for u in units if u.subject == "0001"]
    assert [u.session for u in sub1] == ["V01", "V02"]
    assert sub1[0].t1w != sub1[1].t1w
    assert all(u.t1w.name.startswith(f"sub-0001_ses-{u.session}_") for u in sub1)
    # Ages: sub-0001 is "6 years" in its tables (outside the model's range: warned); the copy-
    # pasted scans.tsv rows that name another subject's file are not trusted.
    assert [u.age_months for u in sub1] == [72.0, 72.0]
    assert all(any("6-month-olds" in w for w in u.warnings) for u in sub1)
    by_label = {u.label: u for u in units}
    assert by_label["sub-0007 ses-V01"].age_months == 4.0
    assert by_label["sub-0006 ses-V01"].age_months is None
    assert any("has no row for" in w for w in by_label["sub-0006 ses-V01"].warnings)
