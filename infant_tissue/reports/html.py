"""Rendering of the HTML reports (Jinja2 templates packaged beside this module)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2

from ..utils.atomic import write_atomic

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("infant_tissue.reports", "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def relative_link(target: Path, report: Path) -> str:
    """``target`` as a URL relative to the report's folder (reports must open from any copy of
    the output folder, so no absolute paths)."""
    return Path(os.path.relpath(target, report.parent)).as_posix()


def render_report(template: str, out_file: Path, **context: Any) -> Path:
    """Render ``templates/<template>`` into ``out_file`` (atomically)."""
    html = _ENV.get_template(template).render(**context)
    return write_atomic(html, out_file)
