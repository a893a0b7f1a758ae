"""Training of 3D-MASNet and the seed-system backbones: data, patch and slice sampling, losses,
optimisers and schedules (each backbone's paper as its default config), and the training loop."""

from .config import TrainingConfig
from .data import Subject, find_iseg_subjects, load_iseg_subject, split_folds

__all__ = ["Subject", "TrainingConfig", "find_iseg_subjects", "load_iseg_subject", "split_folds"]
