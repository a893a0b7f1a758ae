"""The verdict of a session (pass / warn / fail) from its QC metrics, by documented thresholds.

Each :class:`Rule` bounds one metric: inside ``warn`` it passes, outside ``warn`` but inside
``fail`` it warns, outside ``fail`` it fails; a missing metric (``None``/``nan``) is not judged.
The session's verdict is the worst of its rules (and three warnings together are a fail), and
every rule that did not pass gives one sentence in the reasons. The bounds were calibrated on phantoms with known degradations
(``benchmarks/qc_calibration.py``; figures in ``benchmarks/README.md``) and are listed with their
meaning in ``docs/qc.md``; a bound of ``None`` means no limit on that side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from .record import VERDICTS

Bounds = tuple[float | None, float | None]


@dataclass(frozen=True)
class Rule:
    """Acceptable ranges of one metric and how to say that it is outside them."""

    metric: str
    warn: Bounds
    fail: Bounds
    what: str  # what the metric is, in the reason sentence
    fmt: str = "{:.2f}"
    hint: str = ""  # the likely cause, appended to the reason

    def judge(self, value: float | None) -> tuple[str, str]:
        """``(verdict, reason)``: ``('pass', '')`` inside the warn range or without a value."""
        if value is None or not math.isfinite(value):
            return "pass", ""
        for level, (low, high) in (("fail", self.fail), ("warn", self.warn)):
            if low is not None and value < low:
                return level, self._reason(value, "below", low)
            if high is not None and value > high:
                return level, self._reason(value, "above", high)
        return "pass", ""

    def _reason(self, value: float, side: str, bound: float) -> str:
        text = f"{self.what} {self.fmt.format(value)} is {side} {self.fmt.format(bound)}"
        return f"{text} ({self.hint})" if self.hint else text

    def to_json(self) -> dict[str, list[float | None]]:
        return {"warn": list(self.warn), "fail": list(self.fail)}


#: The rules, calibrated on the phantoms of benchmarks/qc_calibration.py (demo bundle,
#: faithful mode; figures in benchmarks/README.md). The disagreement bounds belong to the model:
#: a better-trained ensemble disagrees less on clean data, so these bounds are lenient for it.
RULES: tuple[Rule, ...] = (
    Rule(
        "disagreement_mean",
        warn=(None, 0.13),
        fail=(None, 0.25),
        what="mean ensemble disagreement in the brain",
        fmt="{:.3f}",
        hint="the members disagree: images unlike the training data",
    ),
    Rule(
        "disagreement_high_share",
        warn=(None, 0.03),
        fail=(None, 0.10),
        what="share of the brain where half the members or more disagree",
        fmt="{:.1%}",
    ),
    Rule(
        "registration_cr",
        warn=(0.40, None),
        fail=(0.25, None),
        what="T2w-to-T1w alignment (correlation ratio of T2w given the tissue labels)",
        hint="misregistration, noise or blur: check the registration figure",
    ),
    Rule(
        "t1w_t2w_correlation",
        warn=(None, -0.15),
        fail=(None, 0.3),
        what="correlation of T1w and T2w intensities in the brain",
        hint="a genuine pair is clearly anti-correlated: misalignment, heavy noise, or a T2w "
        "that is not a T2w",
    ),
    Rule(
        "brain_mask_ratio",
        warn=(0.8, 1.25),
        fail=(0.65, 1.5),
        what="brain-mask volume over the volume expected at this age",
        hint="wrong age, a failed brain extraction or an unusual brain",
    ),
    # The T1w's GM/WM contrast is recorded, not judged: at 6 months it is near zero by nature
    # (the isointense phase), 0.0-0.55 on clean phantoms.
    Rule(
        "cnr_gm_wm_t2w",
        warn=(0.8, None),
        fail=(0.5, None),
        what="GM/WM contrast-to-noise ratio of the T2w",
        hint="noise, blur or a wrong contrast",
    ),
    Rule(
        "window_coverage",
        warn=(0.999, None),
        fail=(0.98, None),
        what="share of the brain the evaluated windows covered",
        fmt="{:.1%}",
    ),
)
#: This many warnings together make a fail: independent measures that all degrade at once
#: (disagreement, alignment, T1w/T2w relation) mean a badly degraded session, not bad luck.
WARNINGS_FOR_FAIL = 3


def thresholds(rules: tuple[Rule, ...] = RULES) -> dict[str, dict[str, list[float | None]]]:
    """The rules' bounds as JSON, recorded in every session's QC record."""
    return {rule.metric: rule.to_json() for rule in rules}


def verdict(
    metrics: Mapping[str, float | None], rules: tuple[Rule, ...] = RULES
) -> tuple[str, list[str]]:
    """The worst verdict of the rules (:data:`WARNINGS_FOR_FAIL` warnings count as a fail) and
    one reason per rule that did not pass, fails first."""
    judged = [rule.judge(metrics.get(rule.metric)) for rule in rules]
    worst = max((VERDICTS.index(level) for level, _ in judged), default=0)
    reasons = [f"{level}: {text}" for level, text in judged if level == "fail"]
    warnings = [f"warn: {text}" for level, text in judged if level == "warn"]
    if len(warnings) >= WARNINGS_FOR_FAIL:
        worst = VERDICTS.index("fail")
        reasons.append(f"fail: {len(warnings)} measures outside their range together")
    return VERDICTS[worst], reasons + warnings
