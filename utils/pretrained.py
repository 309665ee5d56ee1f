"""The one edge to `transformers`: pretrained encoders and tokenizers from a local folder, or the
Hugging Face hub (unless offline). Everything else receives loaded objects or plain types."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import Any

import torch

from data.tokenization import SubwordTokenizer
from utils.errors import PretrainedError

OFFLINE_VALUES = ("1", "true", "yes", "on")
LOAD_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError)  # what from_pretrained raises


@dataclass(frozen=True)
class PretrainedEncoder:
    """A pretrained encoder as plain types: its configuration (a dict that rebuilds the architecture
    offline, see models.transformer) and its weights."""

    config: dict[str, Any]
    weights: dict[str, torch.Tensor]


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
    except LOAD_ERRORS as error:
        raise pretrained_error("model", name_or_path, error) from error


def load_pretrained_encoder(name_or_path: str) -> PretrainedEncoder:
    """The configuration and weights of a pretrained encoder (see load_pretrained_model)."""
    encoder = load_pretrained_model(name_or_path)
    config = {key: value for key, value in encoder.config.to_dict().items()
              if key not in ("architectures", "_name_or_path")}
    return PretrainedEncoder(config, encoder.state_dict())


def load_subword_tokenizer(name_or_path: str) -> SubwordTokenizer:
    """The fast tokenizer of a hub id or a folder saved with `save_pretrained` (no network for a folder)."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_only(name_or_path))
    except LOAD_ERRORS as error:
        raise pretrained_error("tokenizer", name_or_path, error) from error
    if not getattr(tokenizer, "is_fast", False) or tokenizer.pad_token_id is None:
        raise PretrainedError(f"{name_or_path!r} has no fast tokenizer with a padding token, which this "
                              "repository needs")
    return SubwordTokenizer(tokenizer.backend_tokenizer, tokenizer.pad_token_id)
