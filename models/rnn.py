"""One recurrent text classifier: Embedding -> RNN | GRU | LSTM -> pooling -> Linear."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from models.layers import MaskedPooling, length_mask

CELLS = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
POOLINGS = ("last", "mean", "max", "attention")


class RecurrentClassifier(nn.Module):
    """Classify padded token sequences; padding never changes a prediction.

    Sequences are packed, so the recurrence stops at each one's length; mean, max and attention
    pooling mask the padded steps. `attention` scores each step against a learned query vector.
    `word_dropout` replaces training tokens by <unk> at random, so the model learns to classify
    questions with words it has never seen.
    """

    def __init__(self, vocab_size: int, num_classes: int, cell: str = "lstm", embed_dim: int = 100,
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, pooling: str = "last", word_dropout: float = 0.0,
                 padding_idx: int = 0, unknown_idx: int = 1) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose from {', '.join(CELLS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.word_dropout, self.unknown_idx = word_dropout, unknown_idx
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.recurrent = CELLS[cell](embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
                                     bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        output_size = hidden_size * (2 if bidirectional else 1)
        self.pool = MaskedPooling(pooling, output_size) if pooling != "last" else None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(output_size, num_classes)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        token_ids, lengths = inputs  # (batch, time), (batch,)
        if self.training and self.word_dropout > 0:
            token_ids = self._drop_words(token_ids)
        embedded = self.dropout(self.embedding(token_ids))  # (batch, time, embed_dim)
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        packed_outputs, hidden = self.recurrent(packed)
        if self.pooling == "last":
            final = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers * directions, batch, hidden)
            directions = 2 if self.recurrent.bidirectional else 1
            pooled = torch.cat(list(final[-directions:]), dim=-1)  # (batch, output_size)
        else:
            outputs, _ = pad_packed_sequence(packed_outputs, batch_first=True)  # (batch, max_len, output_size)
            pooled = self.pool(outputs, length_mask(lengths, outputs.size(1), outputs.device))
        return self.classifier(self.dropout(pooled))  # (batch, num_classes)

    def _drop_words(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Replace each real token by <unk> with probability `word_dropout` (padding stays)."""
        dropped = torch.rand(token_ids.shape, device=token_ids.device) < self.word_dropout
        return token_ids.masked_fill(dropped & (token_ids != self.embedding.padding_idx), self.unknown_idx)
