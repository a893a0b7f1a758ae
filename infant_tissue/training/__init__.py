"""Training of 3D-MASNet networks: data, patch sampling, losses and the training loop."""

from .config import TrainingConfig
from .data import Subject, find_iseg_subjects, load_iseg_subject, split_folds

__all__ = ["Subject", "TrainingConfig", "find_iseg_subjects", "load_iseg_subject", "split_folds"]
