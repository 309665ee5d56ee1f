"""Flags from dataclass fields: each field carries its help text and allowed values, and becomes a
`--kebab-case` option (booleans `--flag/--no-flag`) of an argparse parser that reports a bad
command line as one ConfigError line."""
from __future__ import annotations

import argparse
import dataclasses
import math
import shlex
from dataclasses import dataclass, field
from typing import Any, Sequence

from utils.errors import ConfigError

REMOVED_FLAGS = {  # flags of experiments whose results did not justify keeping them: flag -> what to do instead
    "--distill-loss": "the teacher's term is the KL divergence",
    "--word-dropout": "dropout on the embeddings (--dropout) regularises the recurrent models",
    "--perturbation": "--perturbed-copies drop words at random",
    "--swap-neighbours": "--perturbed-copies drop words at random",
    "--activation": "only the image models have --activation",
    "--batch-norm": "only the image models have --batch-norm",
}


@dataclass(frozen=True)
class Role:
    """What a kind of flag is to a run."""

    command_line_only: bool  # evaluating a checkpoint takes it from the command line, never from the checkpoint
    resumable: bool  # a resume may change it: it changes nothing that is trained
    published: bool  # part of the command that reproduces a run (a model card's)


ROLES = {
    "setting": Role(command_line_only=False, resumable=False, published=True),  # what is trained
    "where": Role(command_line_only=True, resumable=True, published=True),  # where the data is
    "how": Role(command_line_only=True, resumable=True, published=False),  # how to compute or show the run
    "folder": Role(command_line_only=True, resumable=True, published=False),  # which run or checkpoint
    "length": Role(command_line_only=False, resumable=True, published=True),  # a finished run may train further
    "same_numbers": Role(command_line_only=False, resumable=True, published=True),  # memory for time, a moved file
}


BOUNDS = ("minimum", "maximum", "above", "below")  # a range: inclusive low and high, exclusive low and high


def option(default: Any, help: str, choices: Sequence[str] | None = None, *, needs: str | tuple[str, Any] | None = None,
           ignored_with: str | None = None, role: str = "setting", **bounds: float) -> Any:
    """A dataclass field that carries its help text and its allowed values (choices, or a range:
    `minimum`/`maximum` inclusive, `above`/`below` exclusive). The range is shown in `--help` and
    checked by `validate`, so the two cannot drift apart. Floats must also be finite.

    `needs` names the field this one only matters with (e.g. "augment"), or a (field, value) pair
    (e.g. ("model", "resnet")): giving this flag on the command line while that field is off (false,
    0 or empty), or has another value, is an error. `ignored_with` names the field (or the config's
    method) that makes this one useless when set (e.g. "pretrained": the encoder's own shape is used):
    giving both is an error. `role` (a key of ROLES) says whether a resume may change the flag, whether
    it is command-line only, and whether it is part of a published command."""
    unknown = set(bounds) - set(BOUNDS)
    if unknown:
        raise TypeError(f"option() got unknown bounds {sorted(unknown)}; a range is given by {', '.join(BOUNDS)}")
    return field(default=default, metadata={"help": help, "choices": choices, "needs": needs,
                                            "ignored_with": ignored_with, "role": ROLES[role], "bounds": bounds})


def fields_with(config_class: type, prop: str, value: bool = True) -> frozenset[str]:
    """The fields of `config_class` whose role's property `prop` (a field of Role) is `value`."""
    return frozenset(spec.name for spec in dataclasses.fields(config_class)
                     if getattr(field_metadata(config_class, spec.name).get("role", ROLES["setting"]), prop) == value)


def flag_name(field_name: str) -> str:
    """The command-line flag of a config field, e.g. '--val-size' for val_size."""
    return "--" + field_name.replace("_", "-")


def field_metadata(config_class: type, name: str) -> dict[str, Any]:
    """A field's metadata, where a subclass that only changes the default inherits the range and
    choices declared by its base class."""
    merged: dict[str, Any] = {}
    for klass in reversed(config_class.__mro__):
        spec = getattr(klass, "__dataclass_fields__", {}).get(name)
        if spec is not None:
            merged.update({key: value for key, value in spec.metadata.items() if value not in (None, "", {})})
    return merged


def describe_range(bounds: dict[str, float]) -> str:
    """`bounds` in words, e.g. 'in [0, 1)' or '>= 1'."""
    low = ("[", bounds["minimum"]) if "minimum" in bounds else ("(", bounds["above"]) if "above" in bounds else None
    high = ("]", bounds["maximum"]) if "maximum" in bounds else (")", bounds["below"]) if "below" in bounds else None
    if low and high:
        return f"in {low[0]}{low[1]:g}, {high[1]:g}{high[0]}"
    if low:
        return f"{'>=' if low[0] == '[' else '>'} {low[1]:g}"
    return f"{'<=' if high[0] == ']' else '<'} {high[1]:g}" if high else ""


def within(value: float, bounds: dict[str, float]) -> bool:
    """True when `value` lies in the range `bounds` describes."""
    return (value >= bounds.get("minimum", -math.inf) and value <= bounds.get("maximum", math.inf)
            and value > bounds.get("above", -math.inf) and value < bounds.get("below", math.inf))


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each flag's default and keeps the script docstring's line breaks."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad command line as ConfigError (one `error:` line, exit 2) instead
    of printing its usage block, and accepts options between positional arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise ConfigError(f"{message} (see {self.prog} --help)")


def build_parser(config_class: type, description: str, defaults: dict[str, Any] | None = None,
                 preset_names: Sequence[str] = (), preset_name: str = "") -> argparse.ArgumentParser:
    """An argparse parser with one flag per field of `config_class`, defaults overridable; with
    `preset_name`, the help marks the defaults that come from that preset."""
    parser = ArgumentParser(description=description, formatter_class=HelpFormatter)
    for spec in dataclasses.fields(config_class):
        flag = flag_name(spec.name)
        default = (defaults or {}).get(spec.name, spec.default)
        metadata = field_metadata(config_class, spec.name)
        help_text = metadata.get("help", "")
        if metadata.get("bounds"):
            help_text += f"; {describe_range(metadata['bounds'])}"
        if spec.name == "preset" and preset_names:
            help_text += f": {', '.join(preset_names)}"
        if preset_name and spec.name in (defaults or {}):
            help_text += f" [the {preset_name} preset's]"
        type_name = spec.type if isinstance(spec.type, str) else spec.type.__name__
        if type_name == "bool":
            parser.add_argument(flag, default=default, help=help_text, action=argparse.BooleanOptionalAction)
        else:
            kind = {"int": int, "float": float, "str": str}[type_name]
            parser.add_argument(flag, default=default, type=kind, help=help_text,
                                choices=metadata.get("choices"))
    return parser


def refuse_removed_flags(config_class: type, argv: Sequence[str]) -> None:
    """Raise ConfigError naming a flag of REMOVED_FLAGS given in `argv` that `config_class` lacks."""
    own = {flag_name(spec.name) for spec in dataclasses.fields(config_class)}
    for argument in argv:
        flag = argument.split("=", 1)[0]
        if flag in REMOVED_FLAGS and flag not in own:
            raise ConfigError(f"{flag} was removed: {REMOVED_FLAGS[flag]}")


def flags_given(config_class: type, argv: Sequence[str] | None) -> dict[str, Any]:
    """The values of the flags `argv` sets itself (not through a default, preset or resume), by field name."""
    unset = {spec.name: argparse.SUPPRESS for spec in dataclasses.fields(config_class)}
    return vars(build_parser(config_class, "", unset).parse_args(argv))


def command_line(config_class: type, saved: dict[str, Any], preset_values: dict[str, Any], script: str,
                 left_out: Sequence[str] = ()) -> str:
    """A command that trains with the settings `saved` (a run's config.json): `python script` and the
    flags whose values differ from the dataclass defaults with `preset_values` (the preset the run
    used) laid over them; the fields `left_out` (where to write, how to show progress) are not given."""
    words = ["python", script]
    for spec in dataclasses.fields(config_class):
        default = preset_values.get(spec.name, spec.default)
        value = saved.get(spec.name, default)
        if spec.name in left_out or spec.name == "preset" or value == default:
            continue
        flag = flag_name(spec.name)
        words += [flag if value else "--no-" + flag[2:]] if isinstance(value, bool) else [flag, str(value)]
    return shlex.join(words)
