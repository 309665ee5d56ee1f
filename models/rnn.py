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
    """

    def __init__(self, vocab_size: int, num_classes: int, cell: str = "lstm", embed_dim: int = 100,
                 hidden_size: int = 128, num_layers: int = 1, bidirectional: bool = False,
                 dropout: float = 0.0, pooling: str = "last", padding_idx: int = 0) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell {cell!r}; choose from {', '.join(CELLS)}")
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling {pooling!r}; choose from {', '.join(POOLINGS)}")
        self.pooling = pooling
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.recurrent = CELLS[cell](embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
                                     bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        output_size = hidden_size * (2 if bidirectional else 1)
        self.pool = MaskedPooling(pooling, output_size) if pooling != "last" else None
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(output_size, num_classes)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        token_ids, lengths = inputs  # (batch, time), (batch,)
        embedded = self.dropout(self.embedding(token_ids))  # (batch, time, embed_dim)
        lengths = lengths.cpu()  # packing reads them on the host, where the batches keep them (no copy)
        unpadded = not self.training and bool((lengths == token_ids.size(1)).all())
        if unpadded:  # e.g. one question: packing and masking would be pure overhead
            outputs, hidden = self.recurrent(embedded)
        else:
            packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
            packed_outputs, hidden = self.recurrent(packed)
            # (batch, max_len, output_size), for the poolings that read every step
            outputs = pad_packed_sequence(packed_outputs, batch_first=True)[0] if self.pooling != "last" else None
        if self.pooling == "last":
            final = hidden[0] if isinstance(hidden, tuple) else hidden  # (layers * directions, batch, hidden)
            directions = 2 if self.recurrent.bidirectional else 1
            pooled = torch.cat(list(final[-directions:]), dim=-1)  # (batch, output_size)
        else:
            pooled = self.pool(outputs, None if unpadded else length_mask(lengths, outputs.size(1), outputs.device))
        return self.classifier(self.dropout(pooled))  # (batch, num_classes)

    def forward_masked(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        """The logits of `forward` in eval mode, computed without packed sequences (which ONNX
        export gets wrong): each direction of each layer runs over the padded batch, the backward
        one over each sequence reversed within its length, so padding never reaches a real step."""
        token_ids, lengths = inputs  # (batch, time), (batch,)
        steps = token_ids.size(1)
        position = torch.arange(steps, device=token_ids.device)[None, :]
        lengths = lengths.to(token_ids.device)[:, None]
        reverse = torch.where(position < lengths, lengths - 1 - position, position)  # (batch, time)
        directions = 2 if self.recurrent.bidirectional else 1

        def along_time(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
            return tensor.gather(1, index[..., None].expand(-1, -1, tensor.size(2)))

        layer_input = self.embedding(token_ids)  # (batch, time, embed_dim)
        for layer in range(self.recurrent.num_layers):
            outputs = []
            for direction in range(directions):
                recurrent = self._one_direction(layer, direction)
                if direction == 0:
                    outputs.append(recurrent(layer_input)[0])
                else:
                    outputs.append(along_time(recurrent(along_time(layer_input, reverse))[0], reverse))
            layer_input = torch.cat(outputs, dim=-1)  # (batch, time, hidden * directions)
        if self.pooling != "last":
            return self.classifier(self.pool(layer_input, position < lengths))
        hidden = self.recurrent.hidden_size
        forward_last = along_time(layer_input[..., :hidden], (lengths - 1).expand(-1, 1))[:, 0]
        pooled = torch.cat([forward_last, layer_input[:, 0, hidden:]], dim=-1)  # backward ends at step 0
        return self.classifier(pooled)

    def _one_direction(self, layer: int, direction: int) -> nn.Module:
        """A one-layer, one-direction module sharing this model's weights for that layer and direction."""
        kind = type(self.recurrent)
        directions = 2 if self.recurrent.bidirectional else 1
        input_size = self.recurrent.input_size if layer == 0 else self.recurrent.hidden_size * directions
        extra = {"nonlinearity": self.recurrent.nonlinearity} if kind is nn.RNN else {}
        single = kind(input_size, self.recurrent.hidden_size, batch_first=True, **extra)
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            setattr(single, f"{name}_l0", getattr(self.recurrent, name + suffix))
        return single
