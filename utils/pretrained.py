"""The one edge to `transformers`: pretrained encoders and tokenizers from a local folder, or the
Hugging Face hub (unless offline). Everything else receives loaded objects or plain types."""
from __future__ import annotations

import functools
import os
import pickle
import re
from dataclasses import dataclass
from typing import Any

import torch

from data.hf_datasets import hub_offline
from data.locations import LOCAL, MISSING, location
from data.tokenization import SubwordTokenizer
from utils.errors import PretrainedError



@dataclass(frozen=True)
class PretrainedEncoder:
    """A pretrained encoder as plain types: its configuration (a dict that rebuilds the architecture
    offline, see models.transformer), its weights as float32 master weights, and the dtype its file
    held them in (what a checkpoint records of where it started)."""

    config: dict[str, Any]
    weights: dict[str, torch.Tensor]
    file_dtype: str


NOT_KEPT = ("architectures", "_name_or_path", "dtype", "torch_dtype")  # where the model was, the file's dtype


def kept_config(config: dict[str, Any]) -> dict[str, Any]:
    """A model configuration without what describes its files rather than its architecture (their place,
    and the dtype they hold, which from_config would build the model in)."""
    return {key: value for key, value in config.items() if key not in NOT_KEPT}


def float32_weights(weights: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], str]:
    """`weights` with every floating-point tensor in float32 (training arithmetic is the run's --precision,
    never the file's), and the floating dtype most of them had."""
    dtypes = [str(value.dtype).removeprefix("torch.") for value in weights.values() if value.is_floating_point()]
    file_dtype = max(set(dtypes), key=dtypes.count) if dtypes else "float32"
    return {key: value.float() if value.is_floating_point() else value for key, value in weights.items()}, file_dtype


def local_only(name_or_path: str) -> bool:
    """True when nothing may be fetched: `name_or_path` is local (data.locations), or HF_HUB_OFFLINE is set."""
    return location(name_or_path) == LOCAL or hub_offline()


SIZE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
               "max_position_embeddings")
SAVED_FILES = {"model": ("config.json",), "tokenizer": ("tokenizer.json", "tokenizer_config.json", "vocab.txt")}
MAX_SIZE = 10 ** 8  # no real encoder has a dimension this large; a larger one is a damaged config.json


def why_it_failed(error: BaseException) -> str:
    """The first line of a loader's error, shortened, with its type."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error)).strip()
    text = text.splitlines()[0] if text else ""
    if "mismatched_sizes" in text:
        text = "its weights do not have the sizes its config.json gives"
    if isinstance(error, pickle.UnpicklingError):
        text = "its pickled weights hold objects other than tensors, which are never unpickled"
    return f"{text[:200]} [{type(error).__name__}]" if text else type(error).__name__


def pretrained_error(what: str, name_or_path: str, error: BaseException) -> PretrainedError:
    """One-line error for a `what` ('model', 'tokenizer') of `name_or_path` that failed to load."""
    if os.path.isdir(name_or_path):
        names = SAVED_FILES[what]
        if not any(os.path.isfile(os.path.join(name_or_path, name)) for name in names):
            why = f"the folder holds no {what} saved with save_pretrained (no {' or '.join(names)})"
        else:
            why = f"the folder's files do not load: {why_it_failed(error)}"
    elif location(name_or_path) == MISSING:  # a path, not a hub id (which reads 'name' or 'owner/name')
        why = "no such folder"
    elif local_only(name_or_path):
        why = "HF_HUB_OFFLINE is set and it is not in the local cache; give a folder instead"
    else:
        why = "not on the hub, or the hub cannot be reached; give a folder saved with save_pretrained instead"
    return PretrainedError(f"cannot load the {what} of {name_or_path!r}: {why} "
                           "(e.g. ../shared/models/all-MiniLM-L6-v2)")


def check_sizes(config: dict[str, Any], name_or_path: str) -> None:
    """Raise PretrainedError when the configuration gives a size no encoder can have."""
    for key in SIZE_FIELDS:
        value = config.get(key)
        if key in config and not (isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIZE):
            raise PretrainedError(f"cannot load the model of {name_or_path!r}: its config.json gives {key} "
                                  f"{value!r}, not a size an encoder can have")


def load_pretrained_config(name_or_path: str) -> dict[str, Any]:
    """The configuration (config.json) of a pretrained model as a plain dict, its sizes checked."""
    from transformers import AutoConfig

    if location(name_or_path) == MISSING:  # a path that is not there: no hub to ask
        raise pretrained_error("model", name_or_path, FileNotFoundError(name_or_path))

    try:
        config = AutoConfig.from_pretrained(name_or_path, local_files_only=local_only(name_or_path)).to_dict()
    except Exception as error:  # noqa: BLE001 - whatever a damaged or missing file raises is one line
        raise pretrained_error("model", name_or_path, error) from error
    check_sizes(config, name_or_path)
    return kept_config(config)


@functools.lru_cache(maxsize=2)
def load_pretrained_model(name_or_path: str) -> Any:
    """A pretrained transformers model (AutoModel) of a hub id or a folder saved with `save_pretrained`
    (never fetched for a folder, nor under HF_HUB_OFFLINE); PretrainedError when it cannot be had.
    Pickled weights (pytorch_model.bin) are read with torch.load(weights_only=True) by transformers."""
    from transformers import AutoModel
    from transformers.utils import logging

    load_pretrained_config(name_or_path)  # impossible sizes are one line before anything is allocated
    logging.disable_progress_bar()
    logging.set_verbosity_error()  # what is wrong with the weights is said below, in one line
    try:
        model, report = AutoModel.from_pretrained(name_or_path, local_files_only=local_only(name_or_path),
                                                  output_loading_info=True)
    except Exception as error:  # noqa: BLE001 - truncated, pickled or mismatched weights are one line
        raise pretrained_error("model", name_or_path, error) from error
    missing = [name for name in report.get("missing_keys", []) if not name.startswith("pooler.")]  # unused head
    if missing:
        raise PretrainedError(f"cannot load the model of {name_or_path!r}: its weights lack {len(missing)} of the "
                              f"encoder's tensors (e.g. {sorted(missing)[0]}), which would start from random values")
    return model


def load_pretrained_encoder(name_or_path: str) -> PretrainedEncoder:
    """The configuration and float32 weights of a pretrained encoder, whatever dtype its file holds
    (see load_pretrained_model)."""
    encoder = load_pretrained_model(name_or_path)
    config = kept_config(encoder.config.to_dict())
    return PretrainedEncoder(config, *float32_weights(encoder.state_dict()))


def model_vocab_size(name_or_path: str) -> int | None:
    """The number of token embeddings of the model beside a tokenizer (None: a tokenizer without a model)."""
    if os.path.isdir(name_or_path) and not os.path.isfile(os.path.join(name_or_path, "config.json")):
        return None
    try:
        return load_pretrained_config(name_or_path).get("vocab_size")
    except PretrainedError:
        return None


def load_subword_tokenizer(name_or_path: str) -> SubwordTokenizer:
    """The fast tokenizer of a hub id or a folder saved with `save_pretrained` (no network for a folder).
    It must be the real one of the model it comes with: more than its special tokens, and no more
    tokens than that model has embeddings (else PretrainedError)."""
    from transformers import AutoTokenizer

    if location(name_or_path) == MISSING:
        raise pretrained_error("tokenizer", name_or_path, FileNotFoundError(name_or_path))
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_only(name_or_path))
    except Exception as error:  # noqa: BLE001 - whatever a damaged or missing file raises is one line
        raise pretrained_error("tokenizer", name_or_path, error) from error
    if not getattr(tokenizer, "is_fast", False) or tokenizer.pad_token_id is None:
        raise PretrainedError(f"{name_or_path!r} has no fast tokenizer with a padding token, which this "
                              "repository needs")
    size, special = len(tokenizer), len(set(tokenizer.all_special_ids))
    if size <= special:
        raise PretrainedError(f"the tokenizer of {name_or_path!r} knows only its {special} special tokens, so "
                              "every word would be unknown: the folder lacks its tokenizer files (tokenizer.json, "
                              "vocab.txt, ...); save them with tokenizer.save_pretrained")
    embeddings = model_vocab_size(name_or_path)
    if embeddings is not None and not embeddings // 2 < size <= embeddings:
        raise PretrainedError(f"the tokenizer of {name_or_path!r} has {size:,} tokens but its model "
                              f"{embeddings:,} token embeddings: it is not that model's tokenizer")
    specials = {key: value for key, value in tokenizer.special_tokens_map.items() if isinstance(value, str)}
    return SubwordTokenizer(tokenizer.backend_tokenizer, tokenizer.pad_token_id, specials)
