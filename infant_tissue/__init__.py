"""infant-tissue: CSF/GM/WM segmentation of 6-month-old infant brain MRI with 3D-MASNet."""

from __future__ import annotations

from pathlib import Path


def _read_version() -> str:
    # The top-level ``version`` file is the single source of truth; an installed wheel carries the
    # same string in its metadata.
    source_file = Path(__file__).resolve().parent.parent / "version"
    if source_file.is_file():
        return source_file.read_text().strip()
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("infant-tissue")
    except PackageNotFoundError:  # pragma: no cover - running from an unpacked copy
        return "0+unknown"


__version__ = _read_version()

__all__ = ["__version__"]
