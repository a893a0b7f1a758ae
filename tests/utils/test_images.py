"""Image loading checks, exact reorientation round trips and atomic writes (infant_tissue.utils.images)."""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import threading
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from infant_tissue.utils import images
from infant_tissue.utils.atomic import write_atomic
from infant_tissue.utils.images import (
    InputImageError,
    load_image,
    reorient_like,
    same_grid,
    to_canonical,
    zooms,
)

SHAPE = (12, 12, 12)


def _data(shape: tuple[int, ...] = SHAPE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(1.0, 100.0, size=shape).astype(np.float32)


def _save(path: Path, data: np.ndarray, affine: np.ndarray | None = None) -> Path:
    nib.save(nib.Nifti1Image(data, np.eye(4) if affine is None else affine), path)
    return path


def _patch_affine(path: Path, srows: np.ndarray) -> Path:
    """Write ``srows`` as the sform of an uncompressed NIfTI-1 file, qform disabled.

    nibabel refuses to build an image with such an affine, which is exactly why the bytes are
    edited: broken files come from other software.
    """
    raw = bytearray(path.read_bytes())
    raw[252:254] = struct.pack("<h", 0)  # qform_code
    raw[254:256] = struct.pack("<h", 1)  # sform_code
    raw[280:328] = np.asarray(srows, dtype="<f4").reshape(12).tobytes()
    path.write_bytes(bytes(raw))
    return path


def _expect(path: Path, *words: str, **kwargs) -> InputImageError:
    with pytest.raises(InputImageError) as info:
        load_image(path, **kwargs)
    err = info.value
    text = str(err)
    assert path.name in text and "\n" not in text
    assert err.path == path
    for word in words:
        assert word in err.reason, (word, err.reason)
    return err


def test_valid_image_loads_with_data_in_memory(tmp_path):
    data = _data()
    path = _save(tmp_path / "sub-01_T1w.nii.gz", data, np.diag([0.8, 0.8, 0.8, 1.0]))
    img = load_image(path)
    assert isinstance(img.dataobj, np.ndarray)
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), data)
    np.testing.assert_allclose(img.affine, np.diag([0.8, 0.8, 0.8, 1.0]))
    assert zooms(img) == pytest.approx((0.8, 0.8, 0.8))


def test_singleton_fourth_axis_is_squeezed(tmp_path):
    data = _data((*SHAPE, 1))
    img = load_image(_save(tmp_path / "sub-01_T1w.nii.gz", data))
    assert img.shape == SHAPE
    np.testing.assert_array_equal(np.asanyarray(img.dataobj), data[..., 0])


def test_missing_directory_and_garbage_files(tmp_path):
    _expect(tmp_path / "sub-01_T1w.nii.gz", "not found")
    folder = tmp_path / "sub-01_T2w.nii.gz"
    folder.mkdir()
    _expect(folder, "not a regular file")
    garbage = tmp_path / "sub-02_T1w.nii.gz"
    garbage.write_bytes(b"not an image at all" * 20)
    _expect(garbage, "cannot read the image header")
    empty = tmp_path / "sub-03_T1w.nii"
    empty.write_bytes(b"")
    _expect(empty, "cannot read")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads anything")
def test_unreadable_file(tmp_path):
    path = _save(tmp_path / "sub-01_T1w.nii.gz", _data())
    path.chmod(0)
    try:
        _expect(path, "not readable")
    finally:
        path.chmod(0o644)


@pytest.mark.parametrize("name", ["sub-01_T1w.nii.gz", "sub-01_T1w.nii"])
@pytest.mark.parametrize("keep", [0.5, 0.99, 200])
def test_truncated_file(tmp_path, name, keep):
    path = _save(tmp_path / name, _data())
    raw = path.read_bytes()
    path.write_bytes(raw[: keep if isinstance(keep, int) else int(len(raw) * keep)])
    err = _expect(path, "truncated" if name.endswith(".gz") else "")
    assert "truncated" in err.reason or "header" in err.reason


def test_corrupt_gzip_payload(tmp_path):
    path = _save(tmp_path / "sub-01_T2w.nii.gz", _data())
    raw = bytearray(path.read_bytes())
    mid = len(raw) // 2
    raw[mid : mid + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    _expect(path, "corrupt or truncated")


def test_non_finite_values(tmp_path):
    data = _data()
    data[1, 2, 3] = np.nan
    data[4, 5, 6] = np.nan
    data[0, 0, 0] = np.inf
    _expect(_save(tmp_path / "sub-01_T1w.nii.gz", data), "2 NaN", "1 infinite")


def test_all_zeros(tmp_path):
    _expect(_save(tmp_path / "sub-01_T1w.nii.gz", np.zeros(SHAPE, np.int16)), "all zeros")


def test_real_4d_and_2d(tmp_path):
    err = _expect(_save(tmp_path / "sub-01_T1w.nii.gz", _data((*SHAPE, 3))), "4-D image")
    assert err.reason == "4-D image with 3 volumes; give one 3-D T1w"
    _expect(_save(tmp_path / "sub-01_T2w.nii.gz", _data((12, 12))), "2-D image", "3-D T2w")


def test_complex_data_type(tmp_path):
    data = _data().astype(np.complex64)
    _expect(_save(tmp_path / "sub-01_T1w.nii.gz", data), "data type")


def test_singular_and_non_finite_affine(tmp_path):
    singular = np.array([[1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 0]])
    path = _patch_affine(_save(tmp_path / "sub-01_T1w.nii", _data()), singular)
    _expect(path, "singular affine")
    nan = np.array([[1.0, 0, 0, np.nan], [0, 1.0, 0, 0], [0, 0, 1.0, 0]])
    path = _patch_affine(_save(tmp_path / "sub-02_T1w.nii", _data()), nan)
    _expect(path, "NaN or infinite")


@pytest.mark.parametrize(
    ("diag", "words"),
    [
        ((4.0, 4.0, 4.0), ("4×4×4 mm", "coarser than 3 mm")),
        ((1.0, 1.0, 5.0), ("1×1×5 mm", "coarser than 3 mm")),
        ((0.05, 0.05, 0.05), ("finer than 0.1 mm",)),
        ((0.5, 0.5, 2.5), ("too anisotropic", "ratio 5")),
    ],
)
def test_voxel_size_limits(tmp_path, diag, words):
    path = _save(tmp_path / "sub-01_T1w.nii.gz", _data(), np.diag([*diag, 1.0]))
    _expect(path, *words)


def test_anisotropy_is_checked_on_its_own(tmp_path):
    # 1×1×5 mm trips the 3 mm limit first; with a looser limit the anisotropy check still fires.
    path = _save(tmp_path / "sub-01_T1w.nii.gz", _data(), np.diag([1.0, 1.0, 5.0, 1.0]))
    _expect(path, "too anisotropic", max_zoom=10.0)


def test_tiny_image(tmp_path):
    _expect(_save(tmp_path / "sub-01_T1w.nii.gz", _data((5, 12, 12))), "5×12×12", "too small")


def test_error_is_a_picklable_value_error(tmp_path):
    err = InputImageError(tmp_path / "x.nii.gz", "image is all zeros")
    assert isinstance(err, ValueError)
    again = pickle.loads(pickle.dumps(err))
    assert (again.path, again.reason, str(again)) == (err.path, err.reason, str(err))


# --- orientation -------------------------------------------------------------------------------


def _rotation_z(deg: float) -> np.ndarray:
    t = np.deg2rad(deg)
    rot = np.eye(4)
    rot[:2, :2] = [[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]
    return rot


def _affines() -> dict[str, np.ndarray]:
    ras = np.diag([0.8, 0.9, 1.0, 1.0])
    ras[:3, 3] = [-5.0, -6.0, -7.0]
    lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ras
    las = np.diag([-1.0, 1.0, 1.0, 1.0]) @ ras
    pir = ras[:, [1, 2, 0, 3]]  # permuted axes
    pir[:3, :3] = np.diag([1.0, -1.0, 1.0]) @ pir[:3, :3]
    oblique = _rotation_z(25.0) @ pir
    return {"RAS": ras, "LPS": lps, "LAS": las, "permuted": pir, "oblique": oblique}


@pytest.mark.parametrize("name", list(_affines()))
def test_canonical_round_trip_is_exact(name):
    affine = _affines()[name]
    data = _data((12, 10, 8))
    img = nib.Nifti1Image(data, affine)
    canon = to_canonical(img)
    assert nib.aff2axcodes(canon.affine) == ("R", "A", "S")
    # Reorientation moves voxels, never resamples them: the same world points are sampled.
    assert sorted(zooms(canon)) == pytest.approx(sorted(zooms(img)))
    back = reorient_like(np.asanyarray(canon.dataobj), canon, img)
    np.testing.assert_array_equal(back, data)
    # Trailing axes (class probabilities) travel with the voxels.
    probs = np.stack([np.asanyarray(canon.dataobj), -np.asanyarray(canon.dataobj)], axis=-1)
    back = reorient_like(probs, canon, img)
    np.testing.assert_array_equal(back[..., 0], data)
    np.testing.assert_array_equal(back[..., 1], -data)


def _world_x(img: nib.Nifti1Image) -> np.ndarray:
    ijk = np.indices(img.shape[:3]).reshape(3, -1).T
    return nib.affines.apply_affine(img.affine, ijk)[:, 0].reshape(img.shape[:3])


@pytest.mark.parametrize("name", list(_affines()))
def test_position_dependent_labels_land_on_the_right_side(name):
    # A "segmentation" that depends on where a voxel is (right hemisphere = world x > 0),
    # computed in canonical space, must mark the same world points on the original grid.
    img = nib.Nifti1Image(_data((12, 10, 8)), _affines()[name])
    canon = to_canonical(img)
    labels = reorient_like((_world_x(canon) > 0).astype(np.uint8), canon, img)
    np.testing.assert_array_equal(labels, (_world_x(img) > 0).astype(np.uint8))


def test_left_right_flipped_input_gives_mirror_labels():
    # The same head stored RAS and LAS (data and affine flipped together): the label arrays
    # must be mirror images voxel-wise and identical in world space.
    data = _data((12, 10, 8))
    ras = _affines()["RAS"]
    flip = np.eye(4)
    flip[0, 0], flip[0, 3] = -1.0, data.shape[0] - 1
    las = ras @ flip
    img_ras = nib.Nifti1Image(data, ras)
    img_las = nib.Nifti1Image(np.ascontiguousarray(data[::-1]), las)

    def segment(img):
        canon = to_canonical(img)
        cdata = np.asanyarray(canon.dataobj)
        left_half = np.zeros(cdata.shape, bool)
        left_half[: cdata.shape[0] // 2] = True  # RAS: low i is the left hemisphere
        labels = np.where(cdata > 50, 1, 2) * left_half
        return reorient_like(labels.astype(np.uint8), canon, img)

    lab_ras, lab_las = segment(img_ras), segment(img_las)
    np.testing.assert_array_equal(lab_las, lab_ras[::-1])
    assert lab_ras[: data.shape[0] // 2].any() and not lab_ras[data.shape[0] // 2 :].any()


def test_reorient_like_rejects_mismatched_grids():
    img = nib.Nifti1Image(_data(), _affines()["LPS"])
    canon = to_canonical(img)
    with pytest.raises(ValueError, match="does not fit"):
        reorient_like(np.zeros((12, 12, 11)), canon, img)
    other = nib.Nifti1Image(_data(), np.diag([2.0, 2.0, 2.0, 1.0]))
    with pytest.raises(ValueError, match="not the same voxel grid"):
        reorient_like(np.asanyarray(canon.dataobj), canon, other)


def test_same_grid_and_zooms():
    oblique = _affines()["oblique"]
    a = nib.Nifti1Image(_data(), oblique)
    assert zooms(a) == pytest.approx((0.9, 1.0, 0.8))
    assert same_grid(a, nib.Nifti1Image(np.zeros(SHAPE), oblique + 1e-6))
    assert not same_grid(a, nib.Nifti1Image(np.zeros(SHAPE), oblique + 1e-2))
    assert not same_grid(a, nib.Nifti1Image(np.zeros((12, 12, 11)), oblique))
    assert same_grid(a, nib.Nifti1Image(np.zeros((*SHAPE, 3)), oblique))


# --- atomic writes -----------------------------------------------------------------------------


def test_write_atomic_image_text_json(tmp_path):
    out = tmp_path / "sub-01" / "anat"
    data = _data()
    write_atomic(nib.Nifti1Image(data, np.eye(4)), out / "sub-01_dseg.nii.gz")
    write_atomic("index\tname\n1\tGM\n", out / "dseg.tsv")
    write_atomic({"Sources": ["bids:raw:sub-01_T1w.nii.gz"]}, out / "sub-01_dseg.json")
    assert sorted(p.name for p in out.iterdir()) == [
        "dseg.tsv",
        "sub-01_dseg.json",
        "sub-01_dseg.nii.gz",
    ]
    # The gzip really is gzip (the temporary name kept the .nii.gz extension).
    assert gzip.open(out / "sub-01_dseg.nii.gz").read(4)
    np.testing.assert_array_equal(nib.load(out / "sub-01_dseg.nii.gz").get_fdata(), data)
    assert (out / "dseg.tsv").read_text() == "index\tname\n1\tGM\n"
    assert '"Sources"' in (out / "sub-01_dseg.json").read_text()


def test_write_atomic_never_leaves_partial_files(tmp_path, monkeypatch):
    dest = tmp_path / "sub-01_dseg.nii.gz"

    def broken_save(img, filename):
        Path(filename).write_bytes(b"\x1f\x8b half a file")
        raise OSError("disk full")

    monkeypatch.setattr(images.nib, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(nib.Nifti1Image(_data(), np.eye(4)), dest)
    assert list(tmp_path.iterdir()) == []

    # An existing file survives a failed rewrite untouched.
    old = tmp_path / "dataset_description.json"
    old.write_text("{}\n")

    def broken_fsync(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(images.os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="I/O error"):
        write_atomic({"Name": "new"}, old)
    assert old.read_text() == "{}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["dataset_description.json"]


def test_write_atomic_rejects_unknown_objects(tmp_path):
    with pytest.raises(TypeError):
        write_atomic(3.5, tmp_path / "x.txt")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_write_atomic_exclusive_creation_has_one_winner(tmp_path):
    dest = tmp_path / "dataset_description.json"
    wins, losses = [], []

    def create(i):
        try:
            write_atomic({"writer": i}, dest, overwrite=False)
            wins.append(i)
        except FileExistsError:
            losses.append(i)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(losses) == 7
    assert f'"writer": {wins[0]}' in dest.read_text()
    assert [p.name for p in tmp_path.iterdir()] == [dest.name]


def test_write_atomic_analyze_pairs_and_writers_leave_no_partial_files(tmp_path, monkeypatch):
    image = nib.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.eye(4))
    write_atomic(image, tmp_path / "a.nii.gz")
    write_atomic(nib.AnalyzeImage(np.zeros((2, 2, 2), np.uint8), np.eye(4)), tmp_path / "b.hdr")
    write_atomic(lambda tmp: tmp.write_text("x\n"), tmp_path / "c.tsv")  # any writer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii.gz", "b.hdr", "b.img", "c.tsv"]
    assert nib.load(tmp_path / "b.hdr").shape == (2, 2, 2)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(nib, "save", fail)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(image, tmp_path / "d.nii.gz")
    with pytest.raises(OSError, match="disk full"):
        write_atomic(nib.AnalyzeImage(np.zeros((2, 2, 2), np.uint8), np.eye(4)), tmp_path / "e.hdr")
    with pytest.raises(OSError, match="disk full"):
        write_atomic(fail, tmp_path / "f.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.nii.gz", "b.hdr", "b.img", "c.tsv"]
