"""Run configuration: one dataclass per script, turned into argparse flags.

Every field of a config dataclass becomes a `--kebab-case` flag whose help text is the field's
`help` metadata. Booleans get `--flag/--no-flag`. Presets and `--resume` work by replacing the
parser's defaults, so a flag given on the command line always wins.
"""
from __future__ import annotations

import dataclasses
import math
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Sequence

from data.bundle import Batching
from data.examples import Holdout
from utils.errors import ConfigError
from utils.flags import (build_parser, describe_range, field_metadata, flag_name, flags_given, option,
                         refuse_removed_flags, within)

DATA_DIR_ENV = "CLASSIFY_DATA_DIR"
DEFAULT_DATA_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets")
NO_PRESET = "none"  # --preset none: no preset, not even an implied one


def default_data_dir() -> str:
    """The data folder: $CLASSIFY_DATA_DIR if set, else `datasets/` beside the packages."""
    return os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR


@dataclass
class TrainConfig:
    """Flags shared by every training script; each script subclasses it and changes defaults."""

    task: ClassVar[str] = ""  # the built-in data set its scripts train on, as checkpoints name it
    # flags only the built-in data set uses, and flags only a user's own --dataset uses
    builtin_only_flags: ClassVar[tuple[str, ...]] = ("val_size",)
    own_data_flags: ClassVar[tuple[str, ...]] = ("test_dataset", "val_fraction", "test_fraction")
    # --precision auto trains in bf16 on a CPU with native bf16 from this batch size on (None: never)
    cpu_bf16_min_batch: ClassVar[int | None] = None
    # (field, preset): without --preset, the preset of the first field set on the command line ("": always)
    implied_presets: ClassVar[tuple[tuple[str, str], ...]] = ()

    # optimisation
    epochs: int = option(10, "number of training epochs (total, also when resuming)", minimum=1, maximum=100_000,
                         role="length")
    batch_size: int = option(64, "examples per forward pass, per process (an optimizer step takes this x "
                             "--grad-accum-steps x processes)", minimum=1, maximum=1 << 20)
    grad_accum_steps: int = option(1, "batches whose gradients add up to one optimizer step: a larger effective "
                                   "batch in the same memory", minimum=1, maximum=4096)
    lr: float = option(1e-3, "peak learning rate", above=0)
    optimizer: str = option("adam", "optimizer", ["sgd", "adam", "adamw"])
    momentum: float = option(0.9, "momentum (sgd) or beta1 (adam, adamw)", minimum=0, below=1)
    nesterov: bool = option(False, "Nesterov momentum (sgd only)")
    weight_decay: float = option(0.0, "weight decay (L2 for sgd/adam, decoupled for adamw)", minimum=0)
    scheduler: str = option("cosine", "learning-rate schedule over all steps",
                            ["none", "step", "cosine", "linear", "onecycle"])
    warmup_epochs: float = option(0.0, "linear warm-up at the start of cosine/linear/step schedules, in epochs",
                                  minimum=0)
    step_epochs: int = option(10, "step schedule: multiply the lr by 0.1 every this many epochs", minimum=1)
    label_smoothing: float = option(0.0, "label smoothing of the cross-entropy target", minimum=0, maximum=1)
    class_weights: str = option("none", "balanced: weight each training example's cross-entropy by the inverse "
                                "frequency of its class (for imbalanced data)", ["none", "balanced"])
    select_by: str = option("acc", "the validation metric that picks the best epoch (macro_f1: the mean F1 "
                            "over classes, for imbalanced data)", ["acc", "macro_f1"])
    grad_clip: float = option(0.0, "clip the gradient norm to this value (0 = off)", minimum=0)
    ema: float = option(0.0, "validate, test and save an exponential moving average of the weights with this "
                        "decay per step, e.g. 0.999 (0 = off: the weights themselves)", minimum=0, below=1)
    # distillation (Hinton et al. 2015)
    teacher: str = option("", "checkpoint (best.pt) of a trained model of the same task whose outputs the "
                          "student also learns from", role="same_numbers")
    distill_weight: float = option(0.5, "with --teacher: weight a of the teacher's term; loss = (1 - a) "
                                   "cross-entropy + a T^2 KL(teacher/T || student/T)", minimum=0, maximum=1,
                                   needs="teacher")
    temperature: float = option(4.0, "with --teacher: temperature T that softens both models' outputs", above=0,
                                needs="teacher")
    # model
    dropout: float = option(0.0, "dropout probability before the classifier layers", minimum=0, below=1)
    # data
    dataset: str = option("", "the data set: the built-in one, or your own (see each script)")
    test_dataset: str = option("", "with your own --dataset: a separate one of the same kind to test on")
    val_fraction: float = option(0.1, "with your own --dataset without a validation split: the stratified share "
                                 "of training examples held out for validation", above=0, below=1)
    test_fraction: float = option(0.1, "with your own --dataset without a test split or --test-dataset: the "
                                  "stratified share of the examples held out for the test", above=0, below=1)
    data_dir: str = option("", f"data folder (default: ${DATA_DIR_ENV} or ./datasets); e.g. ../shared/data",
                           role="where")
    val_size: int = option(5000, "of the built-in data set: training examples held out for validation, "
                           "stratified (drawn by --split-seed)", minimum=1)
    limit_train: int = option(0, "use only this many training examples, drawn by --seed (0 = all)", minimum=0)
    split_seed: int = option(-1, "seed of the training/validation split (-1: --seed); e.g. a teacher's, so that a "
                             "student of any --seed validates on examples the teacher never trained on",
                             minimum=-1, maximum=2**32 - 1)
    # runtime
    seed: int = option(0, "random seed; on CPU the same seed gives the same numbers", minimum=0, maximum=2**32 - 1)
    device: str = option("auto", "device (auto = cuda when present, else cpu)", ["auto", "cpu", "cuda", "mps"],
                         role="how")
    precision: str = option("auto", "arithmetic (auto = bf16 on CUDA when supported; on a CPU with native "
                            "bf16 for the models it speeds up; else fp32)",
                            ["auto", "fp32", "bf16", "fp16"], role="how")
    compile: bool = option(False, "on one CUDA GPU, record an image model's whole training step as a CUDA graph; "
                           "else torch.compile the model (slower on a CPU and for short fine-tunes)", role="how")
    eval_batch_size: int = option(1024, "examples per batch when evaluating", minimum=1, maximum=1 << 20,
                                  role="how")
    # run bookkeeping
    out_dir: str = option("", "output folder (default: runs/<script>-<timestamp>)", role="folder")
    patience: int = option(0, "stop when validation accuracy has not improved for this many epochs (0 = off)",
                          minimum=0, role="length")
    resume: str = option("", "continue the run in this folder from its last.pt", role="folder")
    eval_only: bool = option(False, "only evaluate --checkpoint on the test set and write the report",
                             role="folder")
    checkpoint: str = option("", "checkpoint for --eval-only", role="folder")
    preset: str = option("", "named recipe that sets several defaults at once (see README); 'none': the "
                         "script's own defaults, also where flags imply a preset")
    progress: bool = option(True, "show a progress bar per epoch", role="how")
    tensorboard: bool = option(True, "also write TensorBoard event files into the run folder", role="how")

    def model_kwargs(self) -> dict[str, Any]:
        """Arguments of the model taken from these flags (each script says which)."""
        return {}

    def batching(self, runtime: Any) -> Batching:
        """How these flags batch any data set, in the process `runtime` describes."""
        return Batching(self.batch_size, self.eval_batch_size, self.seed, runtime.device, runtime.rank,
                        runtime.world_size)

    def holdout(self) -> Holdout:
        """How the splits the data set lacks are held out: --val-size of the built-in one, fractions of yours."""
        val_size = self.val_size if self.dataset == self.task else 0
        return Holdout(self.seed, self.split_seed, self.val_fraction, val_size, self.test_fraction, self.limit_train)

    def pretrained_source(self) -> str:
        """The pretrained encoder (hub id or folder) whose weights start the model ('' for none)."""
        return ""

    def check(self) -> None:
        """Raise ConfigError for a combination of this script's flags that cannot work (default: none)."""


def implied_preset(config_class: type, given: set[str], flags: dict[str, Any]) -> str:
    """The preset that the fields `given` on the command line imply (see TrainConfig.implied_presets)."""
    return next((preset for name, preset in config_class.implied_presets
                 if not name or (name in given and flags.get(name))), "")


def field_defaults(config_class: type) -> dict[str, Any]:
    """Each field's own default, by name."""
    return {spec.name: spec.default for spec in dataclasses.fields(config_class)}


def show_help(config_class: type, argv: list[str], description: str, presets: dict[str, dict[str, Any]]) -> None:
    """Print --help with the defaults the rest of `argv` would run with (the preset given, or the one its
    flags imply, laid over the script's own), each preset value marked, then exit."""
    given = flags_given(config_class, [word for word in argv if word not in ("-h", "--help")])
    preset = given.get("preset") or implied_preset(config_class, set(given), {**field_defaults(config_class), **given})
    build_parser(config_class, description, presets.get(preset, {}), list(presets),
                 preset_name=preset).parse_args(["--help"])


def parse_config(config_class: type, argv: Sequence[str] | None, description: str,
                 presets: dict[str, dict[str, Any]] | None = None,
                 saved_config: Callable[[str], dict[str, Any]] = lambda run_dir: {}) -> Any:
    """Parse `argv` into a `config_class`, applying `--preset` and `--resume` defaults first.

    Order of precedence, lowest first: dataclass defaults, the preset, the resumed run's saved
    config (`saved_config(run_dir)`), flags given in `argv`.
    """
    presets = presets or {}
    argv = list(sys.argv[1:] if argv is None else argv)
    refuse_removed_flags(config_class, argv)
    if "-h" in argv or "--help" in argv:
        show_help(config_class, argv, description, presets)
    given = flags_given(config_class, argv)  # the one parse
    own = field_defaults(config_class)
    defaults = {key: value for key, value in saved_config(given["resume"]).items() if key in own} \
        if given.get("resume") else {}
    preset = (given.get("preset") or defaults.get("preset", "")
              or implied_preset(config_class, set(given), {**own, **given}))
    if preset and preset != NO_PRESET:
        if preset not in presets:
            raise ConfigError(f"unknown preset {preset!r}; choose from: {', '.join([*sorted(presets), NO_PRESET])}")
        defaults = {**presets[preset], **defaults, "preset": preset}
    if given.get("resume"):  # the run is where it is now (a copied folder resumes in its new place)
        defaults.update(resume=given["resume"], out_dir="", eval_only=False, checkpoint="")
    config = config_class(**{**own, **defaults, **given})
    validate(config, set(given))
    return config


def check_dataset_flags(config: TrainConfig) -> None:
    """Raise ConfigError for a flag changed from its default that the chosen data set does not use."""
    if config.resume:  # the run's own settings; what a resume may change is utils.train.resume's
        return
    builtin = config.dataset == config.task
    for spec in dataclasses.fields(config):
        unused = spec.name in (config.own_data_flags if builtin else config.builtin_only_flags)
        if unused and getattr(config, spec.name) != spec.default:
            meant_for = "your own --dataset" if builtin else f"--dataset {config.task}"
            raise ConfigError(f"{flag_name(spec.name)} is for {meant_for}, not --dataset {config.dataset}")


def validate(config: TrainConfig, given: set[str] | frozenset[str] = frozenset()) -> None:
    """Raise ConfigError for values no run can use: each field's range, finiteness, a flag `given`
    on the command line without the flag it `needs`, and the combinations of flags that do not go
    together."""
    for spec in dataclasses.fields(config):
        value, flag = getattr(config, spec.name), flag_name(spec.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag} must be a finite number, got {value}")
        metadata = field_metadata(type(config), spec.name)
        bounds = metadata.get("bounds")
        if bounds and not isinstance(value, bool) and not within(value, bounds):
            raise ConfigError(f"{flag} must be {describe_range(bounds)}, got {value}")
        choices = metadata.get("choices")
        if choices and value not in choices:
            raise ConfigError(f"{flag} must be one of {', '.join(choices)}, got {value!r}")
    for name in sorted(given):
        needed = field_metadata(type(config), name).get("needs")
        if isinstance(needed, tuple):
            key, value = needed
            if getattr(config, key) != value:
                flag, other = flag_name(name), flag_name(key)
                raise ConfigError(f"{flag} has no effect with {other} {getattr(config, key)}: it is for "
                                  f"{other} {value}")
        elif needed and not getattr(config, needed):
            flag, other = flag_name(name), flag_name(needed)
            raise ConfigError(f"{flag} {getattr(config, name)} has no effect without {other}: add {other}")
        overriding = field_metadata(type(config), name).get("ignored_with")
        setting = getattr(config, overriding) if overriding else None
        value = setting() if callable(setting) else setting
        if value:
            given_as = (f"the {overriding.removesuffix('_source')} of {value}" if callable(setting)
                        else f"{flag_name(overriding)} {value}")
            raise ConfigError(f"{flag_name(name)} has no effect with {given_as}: leave it out")
    check_dataset_flags(config)
    if config.eval_only and not config.checkpoint:
        raise ConfigError("--eval-only needs --checkpoint PATH")
    if config.resume and config.out_dir and os.path.abspath(config.resume) != os.path.abspath(config.out_dir):
        raise ConfigError("--resume RUN continues in RUN: leave out --out-dir, or give the same folder")
    if config.eval_only and config.resume:
        raise ConfigError("--eval-only and --resume do not go together: evaluate with --checkpoint RUN/best.pt")
    if config.teacher and not os.path.isfile(config.teacher):
        raise ConfigError(f"--teacher {config.teacher}: no such file (give a trained run's best.pt)")
    config.check()
