"""Label codings: model 0-3, iSeg 0/10/150/250, NiPreps 1 GM / 2 WM / 3 CSF."""

from __future__ import annotations

import numpy as np
import pytest

from infant_tissue.labels import CODINGS, from_model, to_model

MODEL = np.array([0, 1, 2, 3])  # bg, CSF, GM, WM


@pytest.mark.parametrize(
    ("coding", "coded"),
    [("model", [0, 1, 2, 3]), ("iseg", [0, 10, 150, 250]), ("nipreps", [0, 3, 1, 2])],
)
def test_codings_round_trip(coding, coded):
    np.testing.assert_array_equal(from_model(MODEL, coding), coded)
    np.testing.assert_array_equal(to_model(np.array(coded), coding), MODEL)
    assert to_model(np.array(coded, dtype=np.float32), coding).dtype == np.uint8


def test_unknown_values_and_codings_are_rejected():
    with pytest.raises(ValueError, match=r"\[10\] are not in the 'model' coding"):
        to_model(np.array([0, 10]), "model")
    with pytest.raises(ValueError, match="non-integer"):
        to_model(np.array([0.5]), "iseg")
    with pytest.raises(ValueError, match="unknown label coding"):
        to_model(MODEL, "aseg")
    with pytest.raises(ValueError, match="0-3"):
        from_model(np.array([4]), "iseg")
    assert set(CODINGS) == {"model", "iseg", "nipreps"}
