"""What a resumed run must keep from the run it continues: its data, model and switches."""
from __future__ import annotations

from typing import Any

from utils.config import TrainConfig
from utils.errors import ConfigError


def refuse_changes(what: str, changed: list[str], run_dir: str) -> None:
    """Raise ConfigError naming `changed` when a resume of `run_dir` would change `what`."""
    if changed:
        raise ConfigError(f"cannot resume {run_dir} with {what} ({'; '.join(changed)}): drop the flags that change "
                          "it, or start a new run")


def same_model_or_error(saved: dict[str, Any], model_kwargs: dict[str, Any], run_dir: str) -> None:
    """Raise ConfigError when a resume would build another model than the run's (e.g. --cell changed)."""
    def plain(value: Any) -> Any:
        return list(value) if isinstance(value, tuple) else value

    changed = [f"{key} {plain(saved.get(key))!r} -> {plain(model_kwargs.get(key))!r}"
               for key in sorted(set(saved) | set(model_kwargs)) if plain(saved.get(key)) != plain(model_kwargs.get(key))]
    refuse_changes("another model", changed, run_dir)


def same_data_or_error(saved_config: dict[str, Any], config: TrainConfig, run_dir: str) -> None:
    """Raise ConfigError when a resume would train or validate on other examples than the run's
    (e.g. --val-size or --seed changed)."""
    changed = [f"--{name.replace('_', '-')} {saved_config[name]!r} -> {getattr(config, name)!r}"
               for name in config.data_flags if name in saved_config and saved_config[name] != getattr(config, name)]
    refuse_changes("other data", changed, run_dir)


def same_switch_or_error(flag: str, trained_with: bool, resumed_with: bool, run_dir: str) -> None:
    """Raise ConfigError when a resume turns `flag` on or off (its state would be missing or lost)."""
    if trained_with != resumed_with:
        raise ConfigError(f"cannot resume {run_dir} with{'' if resumed_with else 'out'} {flag}: it was trained "
                          f"with{'' if trained_with else 'out'} it; keep its {flag} setting or start a new run")


def same_pretrained_or_error(saved_config: dict[str, Any], config: TrainConfig, run_dir: str) -> None:
    """Raise ConfigError when a resume names another pretrained encoder than the run started from (the
    resumed run rebuilds its encoder from the checkpoint, so the folder itself is not needed)."""
    source = config.pretrained_source()
    saved = saved_config.get("pretrained", source)
    if source != saved:
        refuse_changes("another model", [f"--pretrained {saved!r} -> {source!r}"], run_dir)
