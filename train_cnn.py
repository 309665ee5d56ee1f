"""Train a CNN on FashionMNIST or your images: the seed's two-convolution network, a small ResNet, or a
pretrained image network fine-tuned (--pretrained: any timm model, a folder in timm's format or a hub id).

    python train_cnn.py --data-dir ../shared/data       # the seed network, default recipe: 50 epochs, batch 64
    python train_cnn.py --preset fast                   # 5 epochs, one-cycle schedule, batch norm
    python train_cnn.py --preset budget                 # the same over 25 epochs, with augmentation
    python train_cnn.py --preset best                   # pre-activation ResNet-20, 60 epochs (a GPU's job)
    python train_cnn.py --preset resnet-cpu             # ResNet-14, 12 epochs: under 30 minutes on 2 CPU cores
    python train_cnn.py --model resnet --depth 14 --width 16 --random-erasing 0.5 --ema 0.999 --tta
    python train_cnn.py --teacher runs/cnn-best/best.pt # distil the seed network from a trained ResNet
    python train_cnn.py --resume runs/cnn-20261125-101500
    python train_cnn.py --dataset photos/ --pretrained ../shared/models/tf_efficientnet_lite0.in1k   # fine-tune
    python train_cnn.py --dataset photos/ --pretrained timm/resnet18.a1_in1k --freeze-backbone   # only a new head

--pretrained reads the network's images as it was trained (its input size, mean and std, centre crop), and
implies --preset finetune; a folder is read in place, a hub id fetched unless HF_HUB_OFFLINE=1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from models.resnet import blocks_per_stage
from utils.config import option
from utils.errors import ConfigError
from utils.data_flags import ImageConfig
from utils.data_setup import image_data
from utils.train.experiment import run_script


@dataclass
class CNNConfig(ImageConfig):
    """The CNN's flags: the shared ones with this recipe's defaults, plus its widths."""

    implied_presets: ClassVar[tuple[tuple[str, str], ...]] = (("pretrained", "finetune"),)

    pretrained: str = option("", "fine-tune this pretrained image network: a folder in timm's format (config.json "
                             "and model.safetensors) or a hub id such as timm/resnet18.a1_in1k (empty: --model)")
    freeze_backbone: bool = option(False, "train only the new classifier of the --pretrained network (fast on a "
                                   "CPU)", needs="pretrained")
    encoder_lr_scale: float = option(1.0, "the --pretrained network's learning rate as a fraction of --lr (the "
                                     "new classifier's)", above=0, maximum=1, needs="pretrained")
    epochs: int = 50
    dropout: float = option(0.0, "dropout probability before the classifier layers (0: the 50-epoch default "
                            "was better on validation without it, crop + flip and label smoothing regularise enough)")
    channels_last: bool = True
    model: str = option("cnn", "network: the seed's two-convolution cnn, or a pre-activation resnet "
                        "(batch norm always; --width, --depth, --tta)", ["cnn", "resnet"])
    # the seed network
    conv1_channels: int = option(32, "cnn: output channels of the first convolution", minimum=1, maximum=4096,
                                 needs=("model", "cnn"))
    conv2_channels: int = option(64, "cnn: output channels of the second convolution", minimum=1, maximum=4096,
                                 needs=("model", "cnn"))
    hidden_size: int = option(128, "cnn: units of the hidden fully connected layer", minimum=1, maximum=1 << 16,
                              needs=("model", "cnn"))
    batch_norm: bool = option(False, "cnn: batch normalisation after each convolution", needs=("model", "cnn"))
    # the ResNet
    width: int = option(16, "resnet: channels of its first stage (the others have 2x and 4x)",
                        minimum=1, maximum=1024, needs=("model", "resnet"))
    depth: int = option(20, "resnet: layers, 6n + 2 (8, 14, 20, ...): n blocks in each of 3 stages",
                        minimum=8, maximum=1000, needs=("model", "resnet"))
    tta: bool = option(False, "resnet: evaluate (and predict) with the mean of each image's and its mirror "
                       "image's outputs", needs=("model", "resnet"))

    def model_kwargs(self) -> dict[str, Any]:
        """Arguments of models.cnn.ConvNet, models.resnet.ResNet or models.timm_net.TimmClassifier (whose
        architecture comes with the pretrained network) taken from these flags."""
        if self.pretrained:
            return {"dropout": self.dropout, "freeze_backbone": self.freeze_backbone}
        if self.model == "resnet":
            return {"width": self.width, "depth": self.depth, "activation": self.activation,
                    "dropout": self.dropout, "flip_average": self.tta}
        return {"channels": (self.conv1_channels, self.conv2_channels), "hidden_size": self.hidden_size,
                "activation": self.activation, "batch_norm": self.batch_norm, "dropout": self.dropout}

    def model_name(self) -> str:
        """The registered model these flags ask for."""
        return "timm" if self.pretrained else self.model

    def pretrained_source(self) -> str:
        """--pretrained: the image network whose weights start the model."""
        return self.pretrained

    def check(self) -> None:
        """--depth must fit the ResNet's layout."""
        super().check()
        if self.model == "resnet" and not self.pretrained:
            try:
                blocks_per_stage(self.depth)
            except ValueError as error:
                raise ConfigError(f"--depth: {error}") from None


# short: 5 one-cycle epochs with batch norm, no augmentation, no dropout (dropout 0.25: 0.003 lower on
# validation over 3 seeds); batch 64 is a 2-core CPU's fastest per example
FAST = {"epochs": 5, "lr": 3e-3, "scheduler": "onecycle", "batch_norm": True, "augment": False,
        "label_smoothing": 0.0, "dropout": 0.0, "crop_padding": 2}
# a pre-activation ResNet with SGD, cosine schedule, crop + flip and flip-averaged evaluation;
# both recipes were chosen on validation among the variants listed in the README
RESNET = {"model": "resnet", "width": 16, "tta": True, "optimizer": "sgd", "nesterov": True, "weight_decay": 5e-4,
          "scheduler": "cosine", "augment": True, "crop_padding": 2, "dropout": 0.25, "label_smoothing": 0.1}
PRESETS = {
    # fine-tuning a pretrained network: AdamW lr 1e-3, one warm-up epoch then cosine decay, random resized
    # crops and flips, label smoothing. Chosen on validation (EfficientNet-Lite0, 50 FashionMNIST images a
    # class at 96 px): the whole network at the head's rate 0.860, at 0.3x 0.828, at 0.1x 0.802; lr 3e-3
    # 0.818, 3e-4 0.824; 20 epochs 0.850
    "finetune": {"epochs": 10, "lr": 1e-3, "batch_size": 32, "optimizer": "adamw", "weight_decay": 0.05,
                 "scheduler": "cosine", "warmup_epochs": 1.0, "encoder_lr_scale": 1.0, "augment": True,
                 "label_smoothing": 0.1, "dropout": 0.2},
    "fast": FAST,
    # the fast recipe stretched to 25 epochs, with a 1-pixel crop + flip and no dropout: 11 to 15 minutes on
    # 2 CPU cores (with the 2-pixel crop and dropout 0.25: 0.007 lower on validation)
    "budget": {**FAST, "epochs": 25, "augment": True, "crop_padding": 1},
    # the most accurate recipe measured: ResNet-20, 60 epochs at batch 512 (test 0.9506 on one seed; 2 minutes on
    # an H200, about 3.3 hours on 2 CPU cores)
    "best": {**RESNET, "depth": 20, "epochs": 60, "batch_size": 512, "lr": 0.2, "warmup_epochs": 2},
    # the best ResNet recipe within 30 minutes of training on 2 CPU cores: ResNet-14, 12 epochs, random erasing
    "resnet-cpu": {**RESNET, "depth": 14, "epochs": 12, "batch_size": 128, "lr": 0.1, "warmup_epochs": 0.5,
                   "random_erasing": 0.5},
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train (or evaluate) as the flags in `argv` say; returns the run summary."""
    return run_script(CNNConfig, __doc__, argv, script_name="cnn", model_name=CNNConfig.model_name,
                      make_data=image_data, presets=PRESETS)


if __name__ == "__main__":
    main()
