"""Command-line wrappers: parse flags, run, and turn every expected failure into one line.

Exit codes: 0 success, 2 bad input (flags, data, checkpoints, files, folders), 3 a non-finite
loss, 130 an interruption (Ctrl-C or SIGTERM). A traceback is only ever a bug.
"""
from __future__ import annotations

import sys
from typing import Any, Callable, Sequence

import torch

from data import DataError
from utils.checkpoint import one_line
from utils.config import parse_config
from utils.engine import Interrupted, NonFiniteLoss
from utils.experiment import MakeData, ModelName, run_experiment

EXIT_BAD_INPUT, EXIT_NON_FINITE, EXIT_INTERRUPTED = 2, 3, 130
EXIT_CODES: dict[type[BaseException], int] = {
    NonFiniteLoss: EXIT_NON_FINITE,
    Interrupted: EXIT_INTERRUPTED,
    KeyboardInterrupt: EXIT_INTERRUPTED,
    torch.OutOfMemoryError: EXIT_BAD_INPUT,
    MemoryError: EXIT_BAD_INPUT,
    DataError: EXIT_BAD_INPUT,
    ValueError: EXIT_BAD_INPUT,  # ConfigError, CheckpointError, RunFolderError, InputError, ...
    OSError: EXIT_BAD_INPUT,  # FileNotFoundError, WriteError, PermissionError, ...
}
HINTS: dict[type[BaseException] | tuple[type[BaseException], ...], str] = {
    (torch.OutOfMemoryError, MemoryError): "out of memory: try a smaller --batch-size or --eval-batch-size",
    KeyboardInterrupt: "interrupted"}


def exit_code_and_message(error: BaseException) -> tuple[int, str] | None:
    """The exit code and one-line message for an expected failure; None for a bug."""
    for kind, code in EXIT_CODES.items():
        if isinstance(error, kind):
            hint = next((text for hint_kind, text in HINTS.items() if isinstance(error, hint_kind)), "")
            message = one_line(error) if str(error).strip() else ""
            return code, f"{hint}: {message}" if hint and message else hint or message
    return None


def one_line_errors(run: Callable[[], Any]) -> Any:
    """Call `run()`; an expected failure prints `error: ...` (one line) and exits with its code."""
    try:
        return run()
    except BaseException as error:
        mapped = exit_code_and_message(error) if not isinstance(error, SystemExit) else None
        if mapped is None:
            raise
        code, message = mapped
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(code) from None


def run_tool(run: Callable[[], Any]) -> int:
    """Call `run()` for a tool that returns an exit code: 0, or that of its one-line error."""
    try:
        one_line_errors(run)
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else EXIT_BAD_INPUT
    return 0


def run_script(config_class: type, description: str, argv: Sequence[str] | None, *, script_name: str,
               model_name: ModelName, make_data: MakeData, presets: dict[str, dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    """Parse `argv` into `config_class`, run the experiment and return its summary.

    Bad input (flags, data, checkpoints), a non-finite loss or an interruption prints one
    `error: ...` line to stderr and exits non-zero (SystemExit) instead of a traceback.
    """
    def run() -> dict[str, Any]:
        config = parse_config(config_class, argv, description, presets)
        return run_experiment(config, script_name, model_name, make_data)
    return one_line_errors(run)
