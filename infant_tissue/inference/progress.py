"""Progress over windows × members: a tqdm bar on a terminal, log lines everywhere else.

A BIDS-App mostly runs under a scheduler whose log files would fill with carriage-return bars,
so the bar is only drawn when asked for or when stderr is a terminal.
"""

from __future__ import annotations

import logging
import sys

LOGGER = logging.getLogger("infant_tissue.inference")


class Progress:
    """Counts evaluated windows; draws a bar or logs every ``log_every`` percent.

    Parameters
    ----------
    total
        Windows × members to evaluate.
    enabled
        ``True``: tqdm bar; ``False``: log lines; ``None``: a bar when stderr is a TTY.
    description
        Label of the bar and the log lines.
    log_every
        Percent between log lines when no bar is drawn.
    """

    def __init__(
        self,
        total: int,
        enabled: bool | None = None,
        description: str = "windows",
        log_every: float = 10.0,
    ) -> None:
        if enabled is None:
            enabled = bool(getattr(sys.stderr, "isatty", lambda: False)())
        self.total = max(int(total), 0)
        self.done = 0
        self.description = description
        self.log_every = float(log_every)
        self._next_log = self.log_every
        self._bar = None
        if enabled:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, desc=description, unit="win", leave=False)

    def update(self, count: int) -> None:
        """Record ``count`` more evaluated windows."""
        self.done += int(count)
        if self._bar is not None:
            self._bar.update(int(count))
            return
        if self.total == 0:
            return
        percent = 100.0 * self.done / self.total
        if percent + 1e-9 >= self._next_log:
            LOGGER.debug("%s: %d/%d (%.0f%%)", self.description, self.done, self.total, percent)
            while self._next_log <= percent + 1e-9:
                self._next_log += self.log_every

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
