"""The command-line wrapper every training script shares: parse flags, run, turn errors into one line."""
from __future__ import annotations

import sys
from typing import Any, Sequence

from data import DataError
from utils.config import ConfigError, parse_config
from utils.engine import Interrupted, NonFiniteLoss
from utils.experiment import MakeData, run_experiment

EXIT_CODES = {ConfigError: 2, DataError: 2, FileNotFoundError: 2, ValueError: 2, NonFiniteLoss: 3, Interrupted: 130,
              KeyboardInterrupt: 130}


def run_script(config_class: type, description: str, argv: Sequence[str] | None, *, script_name: str,
               model_name: str, make_data: MakeData, presets: dict[str, dict[str, Any]] | None = None
               ) -> dict[str, Any]:
    """Parse `argv` into `config_class`, run the experiment and return its summary.

    Bad input (flags, data, checkpoints), a non-finite loss or an interruption prints one
    `error: ...` line to stderr and exits non-zero (SystemExit) instead of a traceback.
    """
    try:
        config = parse_config(config_class, argv, description, presets)
        return run_experiment(config, script_name, model_name, make_data)
    except tuple(EXIT_CODES) as error:
        code = next(code for kind, code in EXIT_CODES.items() if isinstance(error, kind))
        print(f"error: {error or 'interrupted'}", file=sys.stderr)
        raise SystemExit(code) from None
