"""The project's own errors, and the rule that turns them into one line and an exit code.

Exit codes: 0 success, 2 bad input (flags, data, checkpoints, files, folders), 3 a non-finite
loss, 130 an interruption (Ctrl-C or SIGTERM). Only the error classes below, the data errors of
`data`, running out of memory and operating-system errors that name a file are expected failures:
they print `error: ...` on one line. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Any, Callable

import torch

from data import DataError

EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_INTERRUPTED = 2, 3, 130
EXIT_BROKEN_PIPE = 141  # what a shell reports for a program ended by SIGPIPE (128 + 13)


class ProjectError(Exception):
    """An expected failure whose message says what is wrong and what to do; exits with `exit_code`."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(ProjectError):
    """A flag value, or a combination of flags, that cannot be used; the message says which and why."""


class CheckpointError(ProjectError):
    """A checkpoint or saved file that cannot be read or does not fit its model; the message names the file."""


class RunFolderError(ProjectError):
    """A run folder that cannot be used as asked (in use, holds another run, not writable)."""


class WriteError(ProjectError):
    """A file could not be written (disk full, read-only folder, ...); the previous file is kept."""


class InputError(ProjectError):
    """An input to classify that cannot be read; the message says which and why."""


class ExportError(ProjectError):
    """An export that failed, or whose file does not compute what the model computes."""


class PretrainedError(ProjectError):
    """A pretrained model or tokenizer that cannot be had; the message says why and what to do."""


class NonFiniteLoss(ProjectError):
    """The loss became NaN or infinite; the message names the epoch and step."""

    exit_code = EXIT_NON_FINITE


class PeerFailed(ProjectError):
    """Another process of a torchrun run failed or was killed, so the collective this one waited in broke."""

    exit_code = 1


class Interrupted(ProjectError):
    """Training stopped on request (SIGINT/SIGTERM) after the current step."""

    exit_code = EXIT_INTERRUPTED


OUT_OF_MEMORY = "out of memory: try a smaller --batch-size or --eval-batch-size"


def one_line(error: BaseException | str) -> str:
    """An error message folded onto one line (exception type when the message is empty)."""
    text = str(error).strip() or (type(error).__name__ if isinstance(error, BaseException) else "")
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def exit_code_and_message(error: BaseException) -> tuple[int, str] | None:
    """The exit code and one-line message of an expected failure; None for a bug."""
    if isinstance(error, ProjectError):
        return error.exit_code, one_line(error)
    if isinstance(error, DataError):
        return EXIT_BAD_INPUT, one_line(error)
    if isinstance(error, KeyboardInterrupt):
        return EXIT_INTERRUPTED, f"interrupted ({one_line(error)})" if str(error) else "interrupted"
    if isinstance(error, (torch.OutOfMemoryError, MemoryError)):
        return EXIT_BAD_INPUT, f"{OUT_OF_MEMORY}: {one_line(error)}" if str(error).strip() else OUT_OF_MEMORY
    if isinstance(error, OSError) and error.filename is not None:  # a file the user named, or a full disk
        return EXIT_BAD_INPUT, one_line(error)
    return None


def raise_interrupt(signum: int, frame: Any) -> None:
    """A signal handler: SIGTERM (a scheduler, torchrun ending the other processes) stops the program
    the way Ctrl-C does, so every phase cleans up and says where it stopped."""
    raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")


def silence_stdout() -> None:
    """Point standard output at /dev/null, so that the interpreter's last flush of a closed pipe
    (`... | head`) is not reported at exit."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def one_line_errors(run: Callable[[], Any]) -> Any:
    """Call `run()`; an expected failure prints `error: ...` (one line) and exits with its code.
    SIGTERM counts as an interruption (KeyboardInterrupt) while it runs. When the reader of standard
    output goes away (`| head`), the program ends quietly with EXIT_BROKEN_PIPE, as Unix tools do."""
    try:
        previous = signal.signal(signal.SIGTERM, raise_interrupt)
    except ValueError:  # not the main thread: leave signals alone
        previous = None
    try:
        return run()
    except BrokenPipeError:
        silence_stdout()
        raise SystemExit(EXIT_BROKEN_PIPE) from None
    except BaseException as error:
        mapped = None if isinstance(error, SystemExit) else exit_code_and_message(error)
        if mapped is None:
            raise
        code, message = mapped
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(code) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_tool(run: Callable[[], Any]) -> int:
    """Call `run()` for a tool that returns an exit code: 0, or that of its one-line error."""
    try:
        one_line_errors(run)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    return 0
