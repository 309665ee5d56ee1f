"""Train a recurrent classifier (RNN, GRU or LSTM) on TREC question classification.

    python train_rnn.py --cell lstm --data-dir ../shared/data
    python train_rnn.py --cell gru --bidirectional --pooling attention
    python train_rnn.py --cell rnn --labels fine
    python train_rnn.py --tokenizer ../shared/models/all-MiniLM-L6-v2   # subword ids instead of words
    python train_rnn.py --teacher runs/transformer-.../best.pt          # distil a fine-tuned encoder (--preset distill)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

from utils.config import option
from utils.data_flags import TEACHERS_TOKENIZER, TextConfig
from utils.data_setup import text_data
from utils.train.experiment import run_script


@dataclass
class RNNConfig(TextConfig):
    """The recurrent model's flags: the shared ones with this recipe's defaults, plus its shape."""

    implied_presets: ClassVar[tuple[tuple[str, str], ...]] = (("teacher", "distill"),)

    cell: str = option("lstm", "recurrent cell", ["rnn", "gru", "lstm"])
    epochs: int = 30
    lr: float = 3e-3
    weight_decay: float = 0.0
    dropout: float = option(0.5, "dropout on the embeddings, between layers and before the classifier")
    embed_dim: int = option(100, "size of each word embedding", minimum=1, maximum=1 << 14)
    hidden_size: int = option(128, "units of the recurrent state (per direction)", minimum=1, maximum=1 << 14)
    num_layers: int = option(1, "stacked recurrent layers", minimum=1, maximum=64)
    bidirectional: bool = option(True, "read each question in both directions")
    pooling: str = option("max", "how the step outputs become one vector", ["last", "mean", "max", "attention"])
    grad_clip: float = 1.0
    tokenizer: str = option("", "read questions with this pretrained model's subword tokenizer (hub id, or a "
                            "folder saved with save_pretrained) instead of a word vocabulary; embeddings start "
                            f"random all the same. '{TEACHERS_TOKENIZER}': the --teacher checkpoint's tokenizer")

    def model_kwargs(self) -> dict[str, Any]:
        """Arguments of models.rnn.RecurrentClassifier taken from these flags."""
        return {"cell": self.cell, "embed_dim": self.embed_dim, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bidirectional": self.bidirectional, "dropout": self.dropout,
                "pooling": self.pooling}

    def tokenizer_source(self) -> str:
        """--tokenizer: the pretrained model whose subword tokenizer reads the questions."""
        return self.tokenizer


PRESETS = {
    "fast": {"batch_size": 128, "lr": 4e-3, "epochs": 10},
    # implied by --teacher: the student reads the teacher's subword ids, and the teacher also labels 32 copies
    # of each question with words dropped; 10 epochs, the teacher's term weighted 0.9 (chosen on validation
    # among 4 to 100 copies, see README). On a 2-core Xeon: 8 minutes of labelling (kept for later runs of
    # the same seed), then 12.5 minutes of training
    "distill": {"tokenizer": TEACHERS_TOKENIZER, "perturbed_copies": 32, "distill_weight": 0.9, "epochs": 10},
}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Train (or evaluate) as the flags in `argv` say; returns the run summary."""
    return run_script(RNNConfig, __doc__, argv, script_name="rnn", model_name="rnn",
                      make_data=text_data, presets=PRESETS)


if __name__ == "__main__":
    main()
