"""What a resumed run must keep from the run it continues: all that decides what is trained.

A resume is the same run, or it is refused: every setting that changes what is trained (data,
model, optimisation, batch and world size, distillation, tokenizer) is compared with the run's
record here, in one place, and a change is one error line naming the flag. Settings that only
say where to look, how to compute or how to show the run may change, and so may the length of the
run (--epochs, --patience: training further stretches the schedule): each field's role says so
(utils.flags.ROLES).
"""
from __future__ import annotations

from typing import Any

from utils.config import TrainConfig
from utils.errors import ConfigError
from utils.flags import fields_with, flag_name
from utils.train.optim import schedule_of

WORLD_SIZE = "world_size"  # recorded beside the flags: the number of processes that train


def refuse_changes(what: str, changed: list[str], run_dir: str) -> None:
    """Raise ConfigError naming `changed` when a resume of `run_dir` would change `what`."""
    if changed:
        raise ConfigError(f"cannot resume {run_dir} with {what} ({'; '.join(changed)}): a resumed run trains as it "
                          "began; drop the flags that change it, or start a new run")


def same_settings_or_error(saved_config: dict[str, Any], config: TrainConfig, world_size: int, run_dir: str) -> None:
    """Raise ConfigError when a resume would train otherwise than the run recorded in `saved_config`:
    another value of any flag whose role is not resumable, another number of processes, or --teacher
    given or dropped."""
    resumable = fields_with(type(config), "resumable")
    changed = [f"{flag_name(name)} {saved_config[name]!r} -> {value!r}" for name, value in vars(config).items()
               if name not in resumable and name in saved_config and saved_config[name] != value]
    if saved_config.get(WORLD_SIZE, world_size) != world_size:
        changed.append(f"{saved_config[WORLD_SIZE]} -> {world_size} processes (each process's batches and the "
                       "learning-rate schedule depend on it; start it with as many)")
    if bool(saved_config.get("teacher")) != bool(config.teacher):
        changed.append(f"{'with' if config.teacher else 'without'} --teacher")
    refuse_changes("other settings", changed, run_dir)


def same_model_or_error(saved: dict[str, Any], model_kwargs: dict[str, Any], run_dir: str) -> None:
    """Raise ConfigError when a resume would build another model than the run's (e.g. the data
    folder now gives another vocabulary)."""
    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    changed = [f"{key} {plain(saved.get(key))!r} -> {plain(model_kwargs.get(key))!r}"
               for key in sorted(set(saved) | set(model_kwargs)) if plain(saved.get(key)) != plain(model_kwargs.get(key))]
    refuse_changes("another model", changed, run_dir)


def same_data_or_error(recorded_meta: dict[str, Any], meta: dict[str, Any], who: str) -> None:
    """Raise ConfigError when the data set's fingerprint (data.bundle.data_fingerprint) differs from the
    one recorded (`who` says whose record: a run being resumed, a teacher); records without one pass."""
    recorded, now = recorded_meta.get("data_sha256"), meta.get("data_sha256")
    if recorded and now and recorded != now:
        raise ConfigError(f"{who} on other data than this run reads (another data set, or its files changed: "
                          f"fingerprint {recorded[:12]} against {now[:12]}); give the same data, or start a new run")


def schedule_change(config: TrainConfig, steps_per_epoch: int, saved_epochs: int, step: int) -> str:
    """What a resume with another --epochs than the run's `saved_epochs` does to the learning rate from `step` on."""
    before = schedule_of(config, steps_per_epoch, saved_epochs)
    after = schedule_of(config, steps_per_epoch, config.epochs)
    return (f"--epochs {saved_epochs} -> {config.epochs}: the {config.scheduler} schedule now spans "
            f"{config.epochs * steps_per_epoch:,} steps instead of {saved_epochs * steps_per_epoch:,}, so the learning "
            f"rate at step {step + 1:,} is {after(step):.3g} (it would have been {before(step):.3g})")
