"""Pretrained image networks in timm's folder format (`config.json` with `architecture` and
`pretrained_cfg`, and `model.safetensors`): a local folder read in place, or a hub id such as
timm/resnet18.a1_in1k fetched (unless HF_HUB_OFFLINE is set) into the hub's cache. Everything is
returned as plain types; timm itself builds the network (models.timm_net)."""
from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from typing import Any

import torch

from data.locations import MISSING, location
from utils.errors import PretrainedError
from utils.pretrained import float32_weights, local_only, why_it_failed

LOCAL_DIR = "local-dir:"  # timm's prefix for a folder; accepted and dropped
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
EXAMPLE = "(e.g. ../shared/models/tf_efficientnet_lite0.in1k or timm/resnet18.a1_in1k)"


@dataclass(frozen=True)
class PretrainedImageNet:
    """A pretrained image network as plain types: its timm architecture and arguments (how it reads
    images is image_preprocessing's), its weights as float32 master weights, and the dtype its file
    held them in."""

    architecture: str
    model_args: dict[str, Any]
    weights: dict[str, torch.Tensor]
    file_dtype: str


def source_name(name_or_path: str) -> str:
    """--pretrained without timm's `local-dir:` prefix."""
    return name_or_path[len(LOCAL_DIR):] if name_or_path.startswith(LOCAL_DIR) else name_or_path


def fetched(name_or_path: str, filename: str) -> str | None:
    """The path of `filename` of a folder or hub id (None: the model has no such file); PretrainedError
    when the hub cannot be asked (offline and not in the local cache, or unreachable)."""
    if os.path.isdir(name_or_path):
        path = os.path.join(name_or_path, filename)
        return path if os.path.isfile(path) else None
    from huggingface_hub import errors, hf_hub_download
    from huggingface_hub.utils import logging

    logging.set_verbosity_error()  # what went wrong is said below, in one line
    not_in_repository = getattr(errors, "RemoteEntryNotFoundError", errors.EntryNotFoundError)
    try:
        return hf_hub_download(name_or_path, filename, local_files_only=local_only(name_or_path))
    except errors.LocalEntryNotFoundError as error:
        raise failure(name_or_path, "HF_HUB_OFFLINE is set and it is not in the local cache; give a folder instead"
                      if local_only(name_or_path) else "the hub cannot be reached; give a folder instead") from error
    except not_in_repository:
        return None
    except Exception as error:  # noqa: BLE001 - the hub client raises many kinds; all mean "not available"
        raise failure(name_or_path, "not on the hub, or the hub cannot be reached") from error


def failure(name_or_path: str, why: str) -> PretrainedError:
    """One line saying why the image network `name_or_path` cannot be had."""
    return PretrainedError(f"cannot load the image network {name_or_path!r}: {why} {EXAMPLE}")


@functools.lru_cache(maxsize=4)
def read_image_config(name_or_path: str) -> dict[str, Any]:
    """The checked config.json of a timm model folder or hub id (read once: the data's preprocessing
    and the model both come from it)."""
    if location(name_or_path) == MISSING:
        raise failure(name_or_path, "no such folder")
    if os.path.isfile(name_or_path):
        raise failure(name_or_path, "a file, not a folder in timm's format (config.json and model.safetensors)")
    path, config = fetched(name_or_path, "config.json"), None
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                config = json.load(file)
        except (OSError, ValueError) as error:
            raise failure(name_or_path, f"its config.json does not read: {why_it_failed(error)}") from error
    if not isinstance(config, dict) or not isinstance(config.get("architecture"), str):
        raise failure(name_or_path, "not a timm model: no config.json naming its 'architecture'")
    return config


def preprocessing_of(config: dict[str, Any], name_or_path: str) -> dict[str, Any]:
    """How the network reads images, from its pretrained_cfg: channels, image_size (a side), mean, std
    (one per channel), crop_pct (the share of the image the centre crop keeps) and interpolation."""
    cfg = config.get("pretrained_cfg") or {}
    try:
        channels, height, width = (int(v) for v in cfg.get("input_size", (3, 224, 224)))
        mean, std = [float(v) for v in cfg.get("mean", (0.485, 0.456, 0.406))], \
            [float(v) for v in cfg.get("std", (0.229, 0.224, 0.225))]
        crop_pct = float(cfg.get("crop_pct", 0.875))
    except (TypeError, ValueError) as error:
        raise failure(name_or_path, f"its pretrained_cfg does not describe images: {error}") from error
    interpolation = cfg.get("interpolation", "bilinear")
    if channels not in (1, 3) or len(mean) != channels or len(std) != channels or min(std) <= 0 or \
            not 0 < crop_pct <= 1 or height != width or interpolation not in ("bilinear", "bicubic", "nearest"):
        raise failure(name_or_path, f"its pretrained_cfg (input_size {cfg.get('input_size')}, mean, std, crop_pct "
                                    f"{crop_pct}, interpolation {interpolation!r}) is not one this project reads")
    return {"channels": channels, "image_size": height, "mean": mean, "std": std, "crop_pct": crop_pct,
            "interpolation": interpolation}


def image_preprocessing(name_or_path: str) -> dict[str, Any]:
    """How the pretrained image network `name_or_path` reads images (see preprocessing_of)."""
    name_or_path = source_name(name_or_path)
    return preprocessing_of(read_image_config(name_or_path), name_or_path)


def read_weights(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, or of a pickled one read with weights_only=True."""
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    return torch.load(path, map_location="cpu", weights_only=True)


def load_pretrained_image_net(name_or_path: str) -> PretrainedImageNet:
    """The architecture, preprocessing and float32 weights of a timm model folder or hub id (never
    fetched for a folder, nor under HF_HUB_OFFLINE); PretrainedError when it cannot be had."""
    name_or_path = source_name(name_or_path)
    config = read_image_config(name_or_path)
    path = next((found for found in (fetched(name_or_path, name) for name in WEIGHT_FILES) if found), None)
    if path is None:
        raise failure(name_or_path, f"no weights ({' or '.join(WEIGHT_FILES)}): it would start from random values")
    try:
        weights = read_weights(path)
    except Exception as error:  # noqa: BLE001 - truncated or pickled-object files are one line
        raise failure(name_or_path, f"its weights do not load: {why_it_failed(error)}") from error
    args = {key: value for key, value in (config.get("model_args") or {}).items() if key != "num_classes"}
    return PretrainedImageNet(config["architecture"], args, *float32_weights(weights))
