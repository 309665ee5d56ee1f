"""Train the two-convolution CNN on FashionMNIST.

    python train_cnn.py --data-dir ../shared/data       # the default recipe: 50 epochs, batch 64
    python train_cnn.py --preset fast                   # 5 epochs, one-cycle schedule, batch norm
    python train_cnn.py --preset budget                 # the same over 25 epochs, with augmentation
    python train_cnn.py --resume runs/cnn-20261125-101500
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from utils.cli import run_script
from utils.config import option
from utils.tasks import ImageConfig, image_data


@dataclass
class CNNConfig(ImageConfig):
    """The CNN's flags: the shared ones with this recipe's defaults, plus its widths."""

    epochs: int = option(50, "number of training epochs (total, also when resuming)")
    dropout: float = option(0.25, "dropout probability before the classifier layers")
    augment: bool = option(True, "random crop (2-pixel padding) and horizontal flip of training batches")
    channels_last: bool = option(True, "channels-last memory format (faster convolutions on CPU and GPU)")
    conv1_channels: int = option(32, "output channels of the first convolution", minimum=1, maximum=4096)
    conv2_channels: int = option(64, "output channels of the second convolution", minimum=1, maximum=4096)
    hidden_size: int = option(128, "units of the hidden fully connected layer", minimum=1, maximum=1 << 16)

    def model_kwargs(self) -> dict[str, Any]:
        """Arguments of models.cnn.ConvNet taken from these flags."""
        return {"channels": (self.conv1_channels, self.conv2_channels), "hidden_size": self.hidden_size,
                "activation": self.activation, "batch_norm": self.batch_norm, "dropout": self.dropout}


# short: 5 one-cycle epochs with batch norm, no augmentation (batch 64 is this CPU's fastest per example)
FAST = {"epochs": 5, "lr": 3e-3, "scheduler": "onecycle", "batch_norm": True, "augment": False,
        "label_smoothing": 0.0}
PRESETS = {
    "fast": FAST,
    # the fast recipe stretched to 25 epochs, with augmentation: about 11 minutes on 2 CPU cores
    "budget": {**FAST, "epochs": 25, "augment": True},
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train (or evaluate) as the flags in `argv` say; returns the run summary."""
    return run_script(CNNConfig, __doc__, argv, script_name="cnn", model_name="cnn",
                      make_data=image_data, presets=PRESETS)


if __name__ == "__main__":
    main()
