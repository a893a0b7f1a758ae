"""QC reports: a per-session HTML page with figures, and a cohort page (fMRIPrep-style)."""

from .group import generate_group_report
from .runtime import RunRecord, RunRecorder, load_run_record
from .session import generate_session_report, generate_session_reports

__all__ = [
    "RunRecord",
    "RunRecorder",
    "generate_group_report",
    "generate_session_report",
    "generate_session_reports",
    "load_run_record",
]
