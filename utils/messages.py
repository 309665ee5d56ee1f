"""The one channel for what a run tells its user: Python logging's logger MESSAGES, whose lines go to
standard output in the main process of a run (show_messages), and nowhere in the others. Library code
says things with `MESSAGES.info(...)`; it never prints."""
from __future__ import annotations

import logging
import sys

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
