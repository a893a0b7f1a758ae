"""Quality control of a session's segmentation: metrics, age norms and a pass/warn/fail verdict.

Light on purpose (numpy, nibabel): the segmentation node, the group level and the reports all
read it. :mod:`.norms` (expected brain volume by age), :mod:`.metrics` (pure measures on arrays),
:mod:`.verdict` (documented thresholds, the verdict and its reasons), :mod:`.record` (the
``*_desc-tissue_qc.json`` a session writes), :mod:`.session` (all of it for one session's
files).
"""

from .record import VERDICTS, QCRecordError, SessionQC, read_session_qc

__all__ = ["VERDICTS", "QCRecordError", "SessionQC", "read_session_qc"]
