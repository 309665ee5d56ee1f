"""Train a Transformer on TREC question classification: from scratch, or fine-tuned from a pretrained encoder.

    python train_transformer.py --data-dir ../shared/data                      # from scratch (--preset scratch)
    python train_transformer.py --pretrained sentence-transformers/all-MiniLM-L6-v2   # fine-tune (--preset finetune)
    python train_transformer.py --pretrained ../shared/models/all-MiniLM-L6-v2 --data-dir ../shared/data   # offline
    python train_transformer.py --pretrained bert-base-uncased --freeze-encoder

--pretrained takes a hub id or a folder saved with `save_pretrained` (read in place, never
fetched; HF_HUB_OFFLINE=1 keeps hub ids to the local cache). Questions then go through the model's
own subword tokenizer, which the checkpoint keeps, so predict.py needs neither network nor folder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from utils.config import option
from utils.errors import ConfigError
from utils.data_flags import TextConfig
from utils.data_setup import text_data
from utils.train.experiment import run_script


@dataclass
class TransformerConfig(TextConfig):
    """The Transformer's flags: the shared text ones, its shape, and what fine-tuning needs."""

    implied_presets: ClassVar[tuple[tuple[str, str], ...]] = (("pretrained", "finetune"), ("", "scratch"))

    pretrained: str = option("", "fine-tune this pretrained encoder: a hub id or a save_pretrained folder "
                             "(empty: train a Transformer from scratch)")
    freeze_encoder: bool = option(False, "train only the classification head on top of the pretrained encoder",
                                  needs="pretrained")
    encoder_lr_scale: float = option(1.0, "the encoder's learning rate as a fraction of --lr (the head's)",
                                     above=0, maximum=1, needs="pretrained")
    optimizer: str = "adamw"
    weight_decay: float = 0.01
    scheduler: str = "linear"
    dropout: float = option(0.1, "dropout in the encoder (from scratch) and before the classifier")
    grad_clip: float = 1.0
    # from scratch
    num_layers: int = option(2, "encoder layers (from scratch)", minimum=1, maximum=48, ignored_with="pretrained")
    num_heads: int = option(4, "attention heads per layer (from scratch); must divide --embed-dim", minimum=1,
                            maximum=64, ignored_with="pretrained")
    embed_dim: int = option(128, "size of token embeddings and hidden states (from scratch)", minimum=1,
                            maximum=4096, ignored_with="pretrained")
    ff_dim: int = option(256, "units of each layer's feed-forward block (from scratch)", minimum=1, maximum=16384,
                         ignored_with="pretrained")
    pooling: str = option("mean", "how token outputs become one vector (from scratch; a pretrained encoder "
                          "keeps its architecture's own head)", ["cls", "mean", "max", "attention"],
                          ignored_with="pretrained")
    gradient_checkpointing: bool = option(False, "recompute the encoder's activations in the backward pass: "
                                          "less memory, more time", needs="pretrained", role="same_numbers")

    def model_kwargs(self) -> dict[str, Any]:
        """Arguments of models.transformer's TransformerClassifier or PretrainedClassifier (whose
        encoder_config comes with the pretrained encoder)."""
        if self.pretrained:
            return {"dropout": self.dropout, "freeze_encoder": self.freeze_encoder}
        return {"embed_dim": self.embed_dim, "num_layers": self.num_layers, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "max_length": self.max_length, "pooling": self.pooling, "dropout": self.dropout}

    def model_name(self) -> str:
        """The registered model these flags ask for."""
        return "pretrained" if self.pretrained else "transformer"

    def tokenizer_source(self) -> str:
        """--pretrained: a fine-tuned encoder reads the questions with its own subword tokenizer."""
        return self.pretrained

    def check(self) -> None:
        """From scratch, the attention heads split the embedding evenly."""
        super().check()
        if not self.pretrained and self.embed_dim % self.num_heads:
            raise ConfigError(f"--embed-dim {self.embed_dim} is not divisible by --num-heads {self.num_heads}")

    def pretrained_source(self) -> str:
        """--pretrained: the encoder whose weights start the model."""
        return self.pretrained


PRESETS = {
    # a small Transformer trained from scratch on the TREC words; max pooling was best on validation
    "scratch": {"epochs": 30, "lr": 1e-3, "batch_size": 64, "warmup_epochs": 1.0, "pooling": "max"},
    # fine-tuning: a few epochs, the encoder at a tenth of the head's learning rate, warm-up then linear decay
    "finetune": {"epochs": 4, "lr": 1e-3, "encoder_lr_scale": 0.1, "batch_size": 32, "warmup_epochs": 0.5},
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train (or evaluate) as the flags in `argv` say; returns the run summary."""
    return run_script(TransformerConfig, __doc__, argv, script_name="transformer", model_name=TransformerConfig.model_name,
                      make_data=text_data, presets=PRESETS)


if __name__ == "__main__":
    main()
