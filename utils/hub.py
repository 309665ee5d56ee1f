"""Where pretrained models come from: a local folder, or the Hugging Face hub (unless offline)."""
from __future__ import annotations

import os

OFFLINE_VALUES = ("1", "true", "yes", "on")


class PretrainedError(ValueError):
    """A pretrained model or tokenizer that cannot be had; the message says why and what to do."""


def local_only(name_or_path: str) -> bool:
    """True when nothing may be fetched: `name_or_path` is a local folder, or HF_HUB_OFFLINE is set."""
    return os.path.isdir(name_or_path) or os.environ.get("HF_HUB_OFFLINE", "").lower() in OFFLINE_VALUES


def pretrained_error(what: str, name_or_path: str, error: BaseException) -> PretrainedError:
    """One-line error for a `what` ('model', 'tokenizer') of `name_or_path` that failed to load."""
    if os.path.isdir(name_or_path):
        why = "the folder holds no such files saved with save_pretrained"
    elif name_or_path.startswith((".", "/", "~")):  # a path, not a hub id (which reads 'owner/name')
        why = "no such folder"
    elif local_only(name_or_path):
        why = "HF_HUB_OFFLINE is set and it is not in the local cache; give a folder instead"
    else:
        why = "not on the hub, or the hub cannot be reached; give a folder saved with save_pretrained instead"
    return PretrainedError(f"cannot load the {what} of {name_or_path!r}: {why} "
                           f"(e.g. ../shared/models/all-MiniLM-L6-v2) [{type(error).__name__}]")
