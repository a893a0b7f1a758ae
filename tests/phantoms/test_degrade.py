"""Degraded phantom sessions do what they say, and the phantom QC norms."""

from __future__ import annotations

import numpy as np
import pytest

from infant_tissue.phantoms import sample_subject
from infant_tissue.phantoms.degrade import DEGRADATIONS, SEVERITY, degrade_session
from infant_tissue.phantoms.norms import brain_volume_ml, phantom_norms
from infant_tissue.qc.norms import growth

SHAPE = (40, 44, 40)


@pytest.fixture(scope="module")
def clean():
    return degrade_session(sample_subject(3, 0, SHAPE), "clean", "none")


def _brain_sd(image):
    return float(image[image > 0].std())


def test_every_degradation_has_two_severities():
    assert set(DEGRADATIONS) == set(SEVERITY)
    assert all(set(levels) == {"mild", "severe"} for levels in SEVERITY.values())
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade_session(sample_subject(3, 0, SHAPE), "sunburn", "mild")


@pytest.mark.parametrize("name", ["rician_noise", "ghosting"])
def test_noise_and_ghosts_raise_the_brain_variance(clean, name):
    session = degrade_session(sample_subject(3, 0, SHAPE), name, "severe")
    assert (session.volumes.t2w > 0).sum() == (clean.volumes.t2w > 0).sum()  # same mask
    assert _brain_sd(session.volumes.t2w) > 1.05 * _brain_sd(clean.volumes.t2w)


def test_thick_slices_smooth_the_third_axis(clean):
    session = degrade_session(sample_subject(3, 0, SHAPE), "thick_slices", "severe")

    def roughness(a):
        return float(np.abs(np.diff(a.astype(float), axis=2))[a[:, :, 1:] > 0].mean())

    assert roughness(session.volumes.t1w) < 0.7 * roughness(clean.volumes.t1w)


def test_t1w_as_t2w_and_misaligned_t2w():
    subject = sample_subject(3, 0, SHAPE)
    severe = degrade_session(subject, "t1w_as_t2w", "severe")
    np.testing.assert_array_equal(severe.volumes.t2w, severe.volumes.t1w)
    mild = degrade_session(subject, "t1w_as_t2w", "mild")
    t1, t2 = mild.volumes.t1w, mild.volumes.t2w
    assert t2.shape != t1.shape or not np.array_equal(t1, t2)  # another T1w run, another grid
    shifted = degrade_session(subject, "misaligned_t2w", "severe")
    assert shifted.t2w_registered
    np.testing.assert_allclose(shifted.volumes.t2w_affine, shifted.volumes.t1w_affine)
    aligned = degrade_session(subject, "misaligned_t2w", "mild")
    # the 5 mm shift moves the T2w's brain further from the T1w's than the 2 mm one
    brain1 = shifted.volumes.t1w > 0
    overlap = [((s.volumes.t2w > 0) & brain1).sum() / brain1.sum() for s in (aligned, shifted)]
    assert overlap[0] > overlap[1]


def test_wrong_age_declares_an_older_age_for_a_young_head(clean):
    session = degrade_session(sample_subject(3, 0, SHAPE), "wrong_age", "severe")
    assert session.true_age_months == 3.0
    assert session.stated_age_months == 3.0 + SEVERITY["wrong_age"]["severe"]
    assert (session.volumes.t1w > 0).sum() < (clean.volumes.t1w > 0).sum()


def test_phantom_norms_follow_the_generator():
    norms = phantom_norms(SHAPE, seed=1, n=4)
    head = sample_subject(5, 0, SHAPE)
    measured = brain_volume_ml(head, voxel_mm=1.5) / growth(head.age_months)
    assert norms.expected_ml(6.0) == pytest.approx(measured, rel=0.2)
    assert norms.expected_ml(12.0) / norms.expected_ml(6.0) == pytest.approx(growth(12.0))
    assert "phantom generator" in norms.source
