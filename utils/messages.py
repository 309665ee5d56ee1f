"""The one channel for what a run tells its user: Python logging's logger MESSAGES, whose lines go to
standard output in the main process of a run (show_messages), and nowhere in the others, and the
progress bars of its long steps, shown where the messages are. Library code says things with
`MESSAGES.info(...)` and counts with `progress_bar(...)`; it never prints."""
from __future__ import annotations

import logging
import sys
from typing import Any, Iterable

from tqdm import tqdm

MESSAGES = logging.getLogger("cnn_rnn_dnn_classification")


class StandardOutput(logging.Handler):
    """Writes each message as one line to the standard output of the moment (a test or a pipe may have
    replaced it); a closed pipe raises, so that the program ends quietly (utils.errors)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stdout.write(self.format(record) + "\n")
        sys.stdout.flush()


def show_messages(main_process: bool) -> None:
    """Send MESSAGES to standard output when this is a run's main process; silence them otherwise."""
    MESSAGES.handlers[:] = [StandardOutput()]
    MESSAGES.setLevel(logging.INFO if main_process else logging.WARNING)
    MESSAGES.propagate = False


def progress_bar(items: Iterable[Any] | None = None, *, what: str, unit: str, total: int | None = None,
                 shown: bool = True) -> tqdm:
    """A progress bar (on standard error, gone when done) over `items` or up to `total`, where MESSAGES
    are shown and `shown` (a run's --progress) asks for it."""
    return tqdm(items, total=total, desc=what, unit=unit, leave=False, dynamic_ncols=True,
                disable=not (shown and MESSAGES.isEnabledFor(logging.INFO)))
