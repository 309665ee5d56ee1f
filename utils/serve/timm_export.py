"""A fine-tuned pretrained image network written in timm's folder format (config.json with its
architecture, class names and preprocessing; model.safetensors; a README.md model card), so that
`timm.create_model("local-dir:DIR", pretrained=True)` and transformers' pipeline("image-classification")
load it with the class names; both are checked against predict.py before the folder appears."""
from __future__ import annotations

import os
import tempfile
from typing import Any

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file

from data.images import image_files
from models.timm_net import load_timm_folder, timm_folder_config
from utils.errors import InputError
from utils.serve.inputs import image_inputs, read_image
from utils.serve.predictor import class_probabilities
from utils.storage.files import save_json, write_into_folder


def save_timm_folder(model: Any, checkpoint: dict[str, Any], folder: str) -> None:
    """Write the network of a --pretrained image checkpoint into `folder` in timm's format."""
    kwargs = checkpoint["model_kwargs"]
    config = timm_folder_config(model, kwargs["architecture"], kwargs.get("model_args") or {},
                                list(checkpoint["class_names"]), checkpoint["meta"])
    save_json(os.path.join(folder, "config.json"), config)
    save_file({key: value.contiguous() for key, value in model.model.state_dict().items()},
              os.path.join(folder, "model.safetensors"))


def image_model_card(checkpoint: dict[str, Any], command: str) -> str:
    """A README.md for the folder: base network, data and classes, how to load it, the training command."""
    config, names, meta = checkpoint.get("config") or {}, checkpoint["class_names"], checkpoint["meta"]
    base = config.get("pretrained", "unknown")
    return "\n".join([
        "---", "library_name: timm", "pipeline_tag: image-classification", "---", "",
        f"# {os.path.basename(os.path.normpath(base))} fine-tuned to classify images into {len(names)} classes", "",
        f"Base network: `{base}`. Data set: `{config.get('dataset', 'unknown')}`. Classes (id: label): "
        + ", ".join(f"{index}: {name}" for index, name in enumerate(names)) + ".", "",
        f"Images are read at {meta['image_size']} px: the shorter side scaled with {meta['interpolation']} "
        f"interpolation, the centre kept ({meta['crop_pct']:g} of it), then normalised by mean {meta['mean']} and "
        f"std {meta['std']}.", "",
        "```python", "import timm", 'model = timm.create_model("local-dir:path/to/this/folder", pretrained=True)', "",
        "from transformers import pipeline",
        'classify = pipeline("image-classification", model="path/to/this/folder")', "```", "",
        "## Training", "", f"    {command}", "",
        "## Intended use and limits", "",
        "Sorting images like those of the data set above into its classes. Every image gets one of these classes, "
        "also one that belongs to none of them; accuracy on other kinds of images is unknown and likely lower.", ""])


def compare_image_loaders(folder: str, model: Any, checkpoint: dict[str, Any], paths: list[str]) -> dict[str, float]:
    """Classify the image files `paths` with timm and with transformers' pipeline() reading `folder`, and
    with `model` as predict.py does; returns the largest probability difference of each and the share
    of equal top-1 labels of both."""
    from transformers import pipeline
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()  # its notes on image backends are not this command's
    names = list(checkpoint["class_names"])
    inputs = image_inputs([read_image(path, checkpoint["meta"], "image") for path in paths], checkpoint["meta"])
    ours = class_probabilities(model, inputs)
    with torch.no_grad():
        timm_probs = load_timm_folder(folder)(inputs).softmax(dim=1)
    classify = pipeline("image-classification", model=folder, device="cpu")
    rows = classify(paths, top_k=len(names))  # every class (its default is the first 5)
    theirs = torch.tensor([[{item["label"]: item["score"] for item in row}[name] for name in names] for row in rows])
    same = (theirs.argmax(dim=1) == ours.argmax(dim=1)) & (timm_probs.argmax(dim=1) == ours.argmax(dim=1))
    return {"max_prob_diff": float((theirs - ours).abs().max()),
            "timm_max_prob_diff": float((timm_probs - ours).abs().max()),
            "same_top1": float(same.float().mean())}


def example_image_files(checkpoint: dict[str, Any], count: int, scratch: str) -> tuple[list[str], str]:
    """Image files to compare the saved network on: the run's own --dataset's, else `count` generated
    ones written into the folder `scratch`."""
    spec = str((checkpoint.get("config") or {}).get("dataset", ""))
    paths = image_files(spec)[:count] if os.path.isdir(spec) else []
    if paths:
        return paths, f"{len(paths)} images of {spec}"
    rng = np.random.default_rng(0)
    for index in range(count):
        height, width = rng.integers(16, 96, 2)
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(
            os.path.join(scratch, f"{index}.png"))
        paths.append(os.path.join(scratch, f"{index}.png"))
    return paths, f"{count} generated images (the run's data set is not here)"


def write_timm_folder(out: str, model: Any, checkpoint: dict[str, Any], command: str, examples: int) -> dict[str, Any]:
    """Write the network of a --pretrained image checkpoint with its model card (the training `command`)
    into the folder `out` (utils.storage.files.write_into_folder) once timm and pipeline() agree with
    it on `examples` images; returns the comparison and what the images were."""
    result: dict[str, Any] = {}

    def write_and_compare(folder: str) -> None:
        save_timm_folder(model, checkpoint, folder)
        with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as file:
            file.write(image_model_card(checkpoint, command))
        with tempfile.TemporaryDirectory() as scratch:
            paths, result["described"] = example_image_files(checkpoint, examples, scratch)
            result.update(compare_image_loaders(folder, model, checkpoint, paths))
        largest = max(result["max_prob_diff"], result["timm_max_prob_diff"])
        if result["same_top1"] < 1 or not largest <= 1e-4:
            raise InputError(f"the saved network disagrees with the checkpoint (largest probability difference "
                             f"{largest:.1e}, same label {100 * result['same_top1']:.1f}%); nothing written")
    write_into_folder(out, write_and_compare)
    return result
