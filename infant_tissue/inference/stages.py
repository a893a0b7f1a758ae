"""Two-stage bundles (seed 001): FCN-1's segmentation -> context maps -> FCN-2.

A bundle whose ``model.json`` has a ``first_stage`` entry carries that first-stage bundle in a
sub-folder (``stage1/``, checked by sha256 like the bundle itself). Before its own networks run,
the first stage segments the subject with the same mode and vote (its own normalisation,
stride and members), and the per-tissue distance maps of that segmentation
(:func:`~.context.context_maps`: unsigned distance to CSF, GM, WM in mm, clipped at
``clip_mm`` = 20 and divided by it) become input channels 3-5 after the T1w and T2w. Training
builds the same maps from out-of-fold first-stage predictions
(:mod:`infant_tissue.training.context`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..bundle import Bundle
from .context import context_maps
from .modes import InferenceMode

#: Distance (mm) at which seed 001's context maps saturate (chosen reading, spec §7).
DEFAULT_CLIP_MM = 20.0


class FirstStage:
    """The first-stage predictor of a two-stage bundle.

    Parameters
    ----------
    bundle
        The two-stage bundle (its ``first_stage()`` is loaded and verified here).
    **predictor_options
        Passed to the first stage's :class:`~.predictor.Predictor` (device, batch size,
        precision, threads), so both stages run alike.
    """

    def __init__(self, bundle: Bundle, **predictor_options: Any) -> None:
        from .predictor import Predictor

        stage = bundle.first_stage()
        if stage is None:
            raise ValueError(f"bundle {bundle.path} declares no first stage")
        self.bundle = stage
        self.clip_mm = float(
            (bundle.metadata["first_stage"].get("context") or {}).get("clip_mm", DEFAULT_CLIP_MM)
        )
        self.predictor = Predictor(stage, **predictor_options)

    def context(
        self, t1w: np.ndarray, t2w: np.ndarray, mode: InferenceMode, vote: str
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Context maps ``(3, D, H, W)`` float32 of the first stage's segmentation, and that
        segmentation's info record."""
        result = self.predictor.predict(t1w, t2w, mode=mode, vote=vote, progress=False)
        maps = context_maps(result.labels, voxel_mm=1.0, clip_mm=self.clip_mm)
        return maps, {**result.info, "clip_mm": self.clip_mm}
