"""Age norms of the brain-mask volume: what a session's brain should measure at its age.

The default table follows the growth of total brain volume in the first years (Gilmore et al.
2012, Knickmeyer et al. 2008, Holland et al. 2014: about 440 mL at birth, 600 mL at 3 months,
710 mL at 6, 880 mL at 12), times 1.15 for the cerebrospinal fluid a brain mask also holds
(ventricles and the extra-cerebral space). Between the tabulated ages the norm is interpolated
linearly. A lab can give its own table (``--qc-norms FILE``: columns ``age_months`` and
``brain_mask_ml``), e.g. from its own controls; the phantom generator writes one for its
synthetic heads, which are far smaller than real brains.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ExitCode, InfantTissueError
from ..utils.tsv import read_tsv, tsv_text

#: Total brain volume (mL, no CSF) by age (months), from the studies above.
TOTAL_BRAIN_ML: tuple[tuple[float, float], ...] = (
    (0.0, 440.0),
    (3.0, 600.0),
    (6.0, 710.0),
    (9.0, 800.0),
    (12.0, 880.0),
    (18.0, 970.0),
    (24.0, 1030.0),
    (36.0, 1100.0),
    (60.0, 1170.0),
)
#: A brain mask holds the CSF around and inside the brain as well.
MASK_OVER_BRAIN = 1.15


class NormsError(InfantTissueError, ValueError):
    """A norms table cannot be used; one line naming the file and the problem."""

    exit_code = ExitCode.USAGE


def growth(age_months: float) -> float:
    """Total brain volume at ``age_months`` relative to 6 months (1.0 at 6 months)."""
    ages, volumes = np.array(TOTAL_BRAIN_ML).T
    return float(np.interp(age_months, ages, volumes) / np.interp(6.0, ages, volumes))


@dataclass(frozen=True)
class BrainVolumeNorms:
    """Expected brain-mask volume (mL) by age, interpolated linearly between table rows."""

    ages: tuple[float, ...]
    volumes_ml: tuple[float, ...]
    source: str = "literature (qc/norms.py)"

    def expected_ml(self, age_months: float) -> float:
        return float(np.interp(age_months, self.ages, self.volumes_ml))

    @classmethod
    def default(cls) -> BrainVolumeNorms:
        ages, volumes = np.array(TOTAL_BRAIN_ML).T
        return cls(tuple(ages), tuple(volumes * MASK_OVER_BRAIN))

    @classmethod
    def scaled(cls, volume_at_6_months_ml: float, source: str) -> BrainVolumeNorms:
        """The default growth curve, scaled to a population whose 6-month brains measure
        ``volume_at_6_months_ml`` (the phantom generator's heads, a site's own controls)."""
        ages = tuple(a for a, _ in TOTAL_BRAIN_ML)
        return cls(ages, tuple(volume_at_6_months_ml * growth(a) for a in ages), source)

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> BrainVolumeNorms:
        """A TSV with ``age_months`` and ``brain_mask_ml`` columns, ages increasing."""
        try:
            header, rows = read_tsv(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise NormsError(f"{path}: cannot read the norms table ({exc})") from None
        missing = [c for c in ("age_months", "brain_mask_ml") if c not in header]
        if missing or not rows:
            raise NormsError(f"{path}: needs columns age_months and brain_mask_ml and a row")
        try:
            ages = [float(r["age_months"]) for r in rows]
            volumes = [float(r["brain_mask_ml"]) for r in rows]
        except ValueError as exc:
            raise NormsError(f"{path}: not a number ({exc})") from None
        if any(b <= a for a, b in zip(ages, ages[1:], strict=False)) or min(volumes) <= 0:
            raise NormsError(f"{path}: ages must increase and volumes be positive")
        return cls(tuple(ages), tuple(volumes), str(Path(path)))

    def write(self, path: str | os.PathLike[str]) -> Path:
        from ..utils.atomic import write_atomic

        rows = ([f"{a:g}", f"{v:.1f}"] for a, v in zip(self.ages, self.volumes_ml, strict=True))
        return write_atomic(tsv_text(("age_months", "brain_mask_ml"), rows), path)


def expected_range(
    norms: BrainVolumeNorms, age_months: float, tolerance: Sequence[float]
) -> tuple[float, float]:
    """``(low, high)`` mL: the norm at that age times the ``tolerance`` factors."""
    expected = norms.expected_ml(age_months)
    return expected * float(tolerance[0]), expected * float(tolerance[1])
