"""Scoring tissue segmentations against ground truth.

:mod:`.metrics` defines the overlap and boundary-distance metrics and :func:`evaluate_tissues`
(every metric for every tissue of two label maps); :mod:`.mhd_vec` holds the 3D-MASNet paper's
vectorised MHD; :mod:`.pairing` finds, pairs, loads, checks and scores prediction and truth
files and builds the tables of ``infant-tissue evaluate`` (:func:`evaluate_inputs`).
"""

from .metrics import (
    METRICS,
    average_surface_distance,
    boundary,
    dice,
    evaluate_tissues,
    hausdorff95,
    modified_hausdorff,
    surface_distances,
    surface_metrics,
    volumetric_similarity,
)
from .mhd_vec import vectorised_mhd
from .pairing import (
    IMAGE_SUFFIXES,
    SEGMENTATION_TOKENS,
    MissingInputError,
    check_same_grid,
    evaluate_inputs,
    evaluate_pair,
    find_segmentations,
    image_stem,
    load_labels,
    pair_inputs,
    subject_key,
    summary_table,
    write_tsv,
)

__all__ = [
    "IMAGE_SUFFIXES",
    "METRICS",
    "SEGMENTATION_TOKENS",
    "MissingInputError",
    "average_surface_distance",
    "boundary",
    "check_same_grid",
    "dice",
    "evaluate_inputs",
    "evaluate_pair",
    "evaluate_tissues",
    "find_segmentations",
    "hausdorff95",
    "image_stem",
    "load_labels",
    "modified_hausdorff",
    "pair_inputs",
    "subject_key",
    "summary_table",
    "surface_distances",
    "surface_metrics",
    "vectorised_mhd",
    "volumetric_similarity",
    "write_tsv",
]
