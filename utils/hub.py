"""Where pretrained models come from: a local folder, or the Hugging Face hub (unless offline)."""
from __future__ import annotations

import functools
import os
from typing import Any

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


@functools.lru_cache(maxsize=2)
def load_pretrained_model(name_or_path: str) -> Any:
    """A pretrained transformers model (AutoModel) of a hub id or a folder saved with `save_pretrained`
    (never fetched for a folder, nor under HF_HUB_OFFLINE); PretrainedError when it cannot be had."""
    from transformers import AutoModel
    from transformers.utils import logging

    logging.disable_progress_bar()
    try:
        return AutoModel.from_pretrained(name_or_path, local_files_only=local_only(name_or_path))
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as error:
        raise pretrained_error("model", name_or_path, error) from error
