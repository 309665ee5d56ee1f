"""Run configuration: one dataclass per script, turned into argparse flags.

Every field of a config dataclass becomes a `--kebab-case` flag whose help text is the field's
`help` metadata. Booleans get `--flag/--no-flag`. Presets and `--resume` work by replacing the
parser's defaults, so a flag given on the command line always wins.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any, Sequence

DATA_DIR_ENV = "CLASSIFY_DATA_DIR"
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets")


class ConfigError(ValueError):
    """A flag value that cannot be used; the message says which and why."""


def option(default: Any, help: str, choices: Sequence[str] | None = None) -> Any:
    """A dataclass field that carries its own help text (and allowed values) for argparse."""
    return field(default=default, metadata={"help": help, "choices": choices})


def default_data_dir() -> str:
    """The data folder: $CLASSIFY_DATA_DIR if set, else `datasets/` beside the packages."""
    return os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR


@dataclass
class TrainConfig:
    """Flags shared by every training script; each script subclasses it and changes defaults."""

    # optimisation
    epochs: int = option(10, "number of training epochs (total, also when resuming)")
    batch_size: int = option(64, "examples per optimizer step, per process (global = this x processes)")
    lr: float = option(1e-3, "peak learning rate")
    optimizer: str = option("adam", "optimizer", ["sgd", "adam", "adamw"])
    momentum: float = option(0.9, "momentum (sgd) or beta1 (adam, adamw)")
    nesterov: bool = option(False, "Nesterov momentum (sgd only)")
    weight_decay: float = option(0.0, "weight decay (L2 for sgd/adam, decoupled for adamw)")
    scheduler: str = option("cosine", "learning-rate schedule over all steps", ["none", "step", "cosine", "onecycle"])
    warmup_epochs: float = option(0.0, "linear warm-up at the start of cosine/step schedules, in epochs")
    step_epochs: int = option(10, "step schedule: multiply the lr by 0.1 every this many epochs")
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy target")
    grad_clip: float = option(0.0, "clip the gradient norm to this value (0 = off)")
    # model
    activation: str = option("relu", "activation function", ["relu", "gelu"])
    batch_norm: bool = option(False, "batch normalisation after each hidden layer")
    dropout: float = option(0.0, "dropout probability before the classifier layers")
    # data
    data_dir: str = option("", f"data folder (default: ${DATA_DIR_ENV} or ./datasets); e.g. ../shared/data")
    val_size: int = option(5000, "training examples held out for validation (chosen by the seed)")
    limit_train: int = option(0, "use only this many training examples (0 = all), for quick checks")
    # runtime
    seed: int = option(0, "random seed; on CPU the same seed gives the same numbers")
    device: str = option("auto", "device (auto = cuda when present, else cpu)", ["auto", "cpu", "cuda", "mps"])
    precision: str = option("auto", "arithmetic (auto = bf16 on CUDA when supported, else fp32)",
                            ["auto", "fp32", "bf16", "fp16"])
    compile: bool = option(False, "torch.compile the model")
    eval_batch_size: int = option(1024, "examples per batch when evaluating")
    # run bookkeeping
    out_dir: str = option("", "output folder (default: runs/<script>-<timestamp>)")
    patience: int = option(0, "stop when validation accuracy has not improved for this many epochs (0 = off)")
    resume: str = option("", "continue the run in this folder from its last.pt")
    eval_only: bool = option(False, "only evaluate --checkpoint on the test set and write the report")
    checkpoint: str = option("", "checkpoint for --eval-only")
    preset: str = option("", "named recipe that sets several defaults at once (see README)")
    progress: bool = option(True, "show a progress bar per epoch")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each flag's default and keeps the script docstring's line breaks."""


def build_parser(config_class: type, description: str, defaults: dict[str, Any] | None = None,
                 preset_names: Sequence[str] = ()) -> argparse.ArgumentParser:
    """An argparse parser with one flag per field of `config_class`, defaults overridable."""
    parser = argparse.ArgumentParser(description=description, formatter_class=HelpFormatter)
    for spec in dataclasses.fields(config_class):
        flag = "--" + spec.name.replace("_", "-")
        default = (defaults or {}).get(spec.name, spec.default)
        help_text = spec.metadata.get("help", "")
        if spec.name == "preset" and preset_names:
            help_text += f": {', '.join(preset_names)}"
        type_name = spec.type if isinstance(spec.type, str) else spec.type.__name__
        if type_name == "bool":
            parser.add_argument(flag, default=default, help=help_text, action=argparse.BooleanOptionalAction)
        else:
            kind = {"int": int, "float": float, "str": str}[type_name]
            parser.add_argument(flag, default=default, type=kind, help=help_text,
                                choices=spec.metadata.get("choices"))
    return parser


def parse_config(config_class: type, argv: Sequence[str] | None, description: str,
                 presets: dict[str, dict[str, Any]] | None = None) -> Any:
    """Parse `argv` into a `config_class`, applying `--preset` and `--resume` defaults first.

    Order of precedence, lowest first: dataclass defaults, the preset, the resumed run's saved
    config, flags given in `argv`.
    """
    presets = presets or {}
    first = build_parser(config_class, description, preset_names=list(presets)).parse_args(argv)
    defaults: dict[str, Any] = {}
    if first.resume:
        defaults.update(load_saved_config(first.resume))
    preset = first.preset or defaults.get("preset", "")
    if preset:
        if preset not in presets:
            raise ConfigError(f"unknown preset {preset!r}; choose from: {', '.join(sorted(presets)) or 'none'}")
        defaults = {**presets[preset], **defaults}
    if first.resume:
        defaults["resume"] = first.resume
    args = build_parser(config_class, description, defaults, list(presets)).parse_args(argv)
    config = config_class(**vars(args))
    validate(config)
    return config


def load_saved_config(run_dir: str) -> dict[str, Any]:
    """The config.json saved in `run_dir`, as a dict."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        raise ConfigError(f"cannot resume: {path} not found (is {run_dir!r} a run folder?)")
    with open(path) as f:
        return json.load(f)


def validate(config: TrainConfig) -> None:
    """Raise ConfigError for values no run can use."""
    positive = ["epochs", "batch_size", "eval_batch_size"]
    for name in positive:
        if getattr(config, name) <= 0:
            raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(config, name)}")
    if config.lr <= 0:
        raise ConfigError(f"--lr must be positive, got {config.lr}")
    if not 0.0 <= config.dropout < 1.0:
        raise ConfigError(f"--dropout must be in [0, 1), got {config.dropout}")
    if config.val_size < 0 or config.limit_train < 0 or config.patience < 0:
        raise ConfigError("--val-size, --limit-train and --patience cannot be negative")
    if config.eval_only and not config.checkpoint:
        raise ConfigError("--eval-only needs --checkpoint PATH")
