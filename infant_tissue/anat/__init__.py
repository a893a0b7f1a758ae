"""Anatomical image steps as pure functions on files (ANTs, nibabel); no nipype in here."""
