"""Precomputed brain masks (NiBabies ``desc-brain_mask``) of a session, from ``--derivatives``."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from ..layout import session_label
from .naming import natural_key, strip_prefix

LOGGER = logging.getLogger(__name__)

_SPACE_PREFERENCE = {"T1w": 0, None: 1, "orig": 2}
_MATCH_ENTITIES = ("acquisition", "ceagent", "reconstruction", "run")


def _parse_entities(name: str) -> tuple[dict[str, str], str]:
    """(entities, suffix) of a BIDS file name, by pybids' own parser (pybids entity names)."""
    from bids.layout import parse_file_entities

    # the leading slash: pybids finds "sub-" only after a path separator
    found = {k: str(v) for k, v in parse_file_entities("/" + name).items()}
    return found, found.pop("suffix", "")


def find_precomputed_mask(
    derivatives_dir: str | os.PathLike[str],
    subject: str,
    session: str | None = None,
    *,
    t1w: str | os.PathLike[str] | None = None,
) -> Path | None:
    """A NiBabies-style precomputed brain mask for one session, or None.

    Looks in ``derivatives_dir/sub-X[/ses-Y]/anat/`` for
    ``sub-X[_ses-Y][_acq-..][_run-..][_space-T1w]_desc-brain_mask.nii[.gz]`` — the names NiBabies
    writes and reads with ``--derivatives``. The mask must be in the T1w's space: ``space-T1w``
    is preferred, then no ``space`` entity, then ``space-orig`` (older NiBabies); other spaces
    are ignored. When ``t1w`` is given, masks whose ``acq``/``ce``/``rec``/``run`` differ from
    the T1w's are ignored. Whether the mask's grid really matches the T1w is for the caller to
    check (:func:`infant_tissue.images.same_grid`).

    Returns
    -------
    pathlib.Path or None
        The first candidate in order of preference then name; several equally good candidates
        are logged as a warning.
    """
    subject = strip_prefix(subject, "sub-")
    session = strip_prefix(session, "ses-") if session else None
    folder = Path(derivatives_dir) / f"sub-{subject}"
    if session:
        folder = folder / f"ses-{session}"
    folder = folder / "anat"
    if not folder.is_dir():
        return None
    ref = _parse_entities(Path(t1w).name)[0] if t1w is not None else {}
    ranked: list[tuple[int, list[Any], Path]] = []
    for path in folder.iterdir():
        if not (path.name.endswith(".nii.gz") or path.name.endswith(".nii")):
            continue
        ents, suffix = _parse_entities(path.name)
        if suffix != "mask" or ents.get("desc") != "brain" or ents.get("subject") != subject:
            continue
        if ents.get("session") != session:
            continue
        space = ents.get("space")
        if space not in _SPACE_PREFERENCE:
            continue
        if any(k in ref and k in ents and ref[k] != ents[k] for k in _MATCH_ENTITIES):
            continue
        ranked.append((_SPACE_PREFERENCE[space], natural_key(path), path))
    if not ranked:
        return None
    ranked.sort(key=lambda item: (item[0], item[1]))
    best = [p for rank, _, p in ranked if rank == ranked[0][0]]
    if len(best) > 1:
        LOGGER.warning(
            "%d brain masks for %s in %s: %s; using %s",
            len(best),
            session_label(subject, session),
            folder,
            ", ".join(p.name for p in best),
            best[0].name,
        )
    return best[0]
