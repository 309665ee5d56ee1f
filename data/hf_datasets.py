"""Hugging Face datasets: a folder written by `save_to_disk`, or a hub id (read through the local
cache under HF_HUB_OFFLINE=1), as splits with the input and label columns found from the features."""
from __future__ import annotations

import os
from typing import Any

from data import DataError
from data.locations import MISSING, location

OFFLINE_VALUES = ("1", "true", "yes", "on")


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE asks that nothing be fetched from the Hugging Face hub."""
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in OFFLINE_VALUES


SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val", "dev": "val", "test": "test"}


def load_splits(spec: str, config_name: str = "") -> dict[str, Any]:
    """The splits ("train", "val", "test" where present) of a dataset folder or hub id."""
    import datasets

    if location(spec) == MISSING:
        raise DataError(f"--dataset {spec}: no such file or folder")
    datasets.disable_progress_bars()
    if hub_offline():
        datasets.config.HF_HUB_OFFLINE = True  # also when it was set after the library was imported
    try:
        if os.path.isdir(spec):
            loaded = datasets.load_from_disk(spec)
        else:
            loaded = datasets.load_dataset(spec, config_name or None)
    except Exception as error:  # noqa: BLE001 - the library raises many kinds; all mean "not available"
        where = ("not a folder written by save_to_disk" if os.path.isdir(spec) else
                 "not in the local cache (HF_HUB_OFFLINE is set)" if hub_offline() else
                 "not on the hub, or the hub cannot be reached")
        first = " ".join(str(error).split())[:160]
        raise DataError(f"--dataset {spec}: cannot load it: {where} ({type(error).__name__}: {first})") from error
    if isinstance(loaded, datasets.Dataset):
        return {"train": loaded}
    splits = {SPLIT_NAMES[name]: part for name, part in loaded.items() if name in SPLIT_NAMES}
    if "train" not in splits:
        raise DataError(f"--dataset {spec}: no train split (it has {', '.join(loaded)})")
    return splits


def find_columns(dataset: Any, spec: str, kind: str, input_column: str, label_column: str
                 ) -> tuple[str, str, list[str] | None]:
    """(input column, label column, class names from a ClassLabel feature or None) of a dataset of
    `kind` ("text" or "image"): the named columns, else 'text'/'image' and 'label', else the only
    column of the right feature type."""
    import datasets

    features = dataset.features

    def pick(named: str, default: str, fits: Any, what: str) -> str:
        if named or default in features:
            column = named or default
            if column not in features:
                raise DataError(f"--dataset {spec}: no column {column!r} (its columns: {', '.join(features)})")
            return column
        fitting = [name for name, feature in features.items() if fits(feature)]
        if len(fitting) != 1:
            advice = (f"name it with --{what.split()[0]}-column" if kind == "text"
                      else f"rename it to {default!r} (datasets' rename_column)")  # image scripts take no column flags
            raise DataError(f"--dataset {spec}: which column holds the {what}? (its columns: "
                            f"{', '.join(features)}); {advice}")
        return fitting[0]

    if kind == "image":
        inputs = pick(input_column, "image", lambda f: isinstance(f, datasets.Image), "image column")
    else:
        inputs = pick(input_column, "text", lambda f: getattr(f, "dtype", "") in ("string", "large_string"),
                      "text column")
    labels = pick(label_column, "label", lambda f: isinstance(f, datasets.ClassLabel), "label column")
    feature = features[labels]
    return inputs, labels, list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
