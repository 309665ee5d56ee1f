"""Transformer text classifiers: one trained from scratch, one fine-tuned from a pretrained encoder.

Both take the batches every text model takes, `(token_ids, lengths)`, build the padding mask from
the lengths, and attend to and pool over the real tokens only, so padding never changes a
prediction. `transformers` stays out of the engine and the batches, which see tensors.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from models.layers import MaskedPooling, length_mask


class EncoderLayer(nn.Module):
    """A pre-norm Transformer layer: x + attention(norm(x)), then x + feed_forward(norm(x)).

    Multi-head self-attention with padded keys masked out, written out (rather than
    nn.TransformerEncoderLayer) so that its ONNX export keeps the batch and the length dynamic.
    """

    def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.attention_norm = nn.LayerNorm(embed_dim)
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)  # queries, keys and values in one product
        self.attention_out = nn.Linear(embed_dim, embed_dim)
        self.feed_forward_norm = nn.LayerNorm(embed_dim)
        self.feed_forward = nn.Sequential(nn.Linear(embed_dim, ff_dim), nn.GELU(), nn.Dropout(dropout),
                                          nn.Linear(ff_dim, embed_dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # hidden (batch, time, embed_dim); mask (batch, time), True on real tokens
        queries, keys, values = (part.unflatten(-1, (self.num_heads, -1)).transpose(1, 2)  # (batch, heads, time, head_dim)
                                 for part in self.qkv(self.attention_norm(hidden)).chunk(3, dim=-1))
        # softmax(q k^T / sqrt(d) + bias) v, with bias 0 on real keys and -inf on padded ones
        bias = torch.zeros_like(mask, dtype=hidden.dtype).masked_fill(~mask, float("-inf"))[:, None, None, :]
        scores = queries @ keys.transpose(-2, -1) / queries.size(-1) ** 0.5 + bias  # (batch, heads, time, time)
        attended = self.dropout(torch.softmax(scores, dim=-1)) @ values  # (batch, heads, time, head_dim)
        hidden = hidden + self.dropout(self.attention_out(attended.transpose(1, 2).flatten(2)))
        return hidden + self.dropout(self.feed_forward(self.feed_forward_norm(hidden)))


class TransformerClassifier(nn.Module):
    """Token + position embedding -> pre-norm encoder layers (GELU) -> masked pooling -> Linear.

    With `pooling="cls"` a learned [CLS] vector is put before each question and its output is
    the question's summary, as in BERT.
    """

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int = 128, num_layers: int = 2,
                 num_heads: int = 4, ff_dim: int = 256, max_length: int = 64, pooling: str = "mean",
                 dropout: float = 0.1, padding_idx: int = 0) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.position = nn.Embedding(max_length + 1, embed_dim)  # +1: room for [CLS]
        self.cls = nn.Parameter(torch.randn(embed_dim) * 0.02) if pooling == "cls" else None
        self.encoder = nn.ModuleList(EncoderLayer(embed_dim, num_heads, ff_dim, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(embed_dim)  # a pre-norm stack leaves its output unnormalised
        self.pool = MaskedPooling(pooling, embed_dim)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(embed_dim, num_classes)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        token_ids, lengths = inputs  # (batch, time), (batch,)
        embedded = self.embedding(token_ids)  # (batch, time, embed_dim)
        mask = length_mask(lengths, token_ids.size(1), token_ids.device)  # (batch, time)
        if self.cls is not None:
            embedded = torch.cat([self.cls.expand(token_ids.size(0), 1, -1), embedded], dim=1)  # size(): traced
            mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        positions = torch.arange(embedded.size(1), device=token_ids.device)
        hidden = self.dropout(embedded + self.position(positions))  # (batch, time, embed_dim)
        for layer in self.encoder:
            hidden = layer(hidden, mask)
        hidden = self.norm(hidden)
        return self.classifier(self.dropout(self.pool(hidden, mask)))  # (batch, num_classes)


def config_from_dict(encoder_config: dict[str, Any]) -> Any:
    """A transformers config object from its plain-dict form (as saved in a checkpoint)."""
    from transformers import AutoConfig

    # float32 whatever dtype the file had; the pretrained model's own labels (id2label) give way to num_labels
    ignored = ("dtype", "torch_dtype", *(("id2label", "label2id") if "num_labels" in encoder_config else ()))
    settings = {key: value for key, value in encoder_config.items() if key not in ignored}
    return AutoConfig.for_model(settings.pop("model_type"), **settings)


class PretrainedClassifier(nn.Module):
    """A `transformers` encoder with its own sequence-classification head (BERT: [CLS] -> pooler ->
    dropout -> Linear), i.e. `AutoModelForSequenceClassification` of the encoder's architecture, so
    that a fine-tuned model is exactly a model the Hugging Face ecosystem loads (export.py --format hf).

    Built from the encoder's configuration alone (plain types, kept in the checkpoint), so a
    checkpoint rebuilds it with no network and no model folder; `load_pretrained_weights` fills
    the encoder with the weights utils.pretrained loads before fine-tuning. `vocab_size` and
    `padding_idx` are the tokenizer's, as every text model receives them: the vocabulary is checked
    to fit the encoder's embedding; padding is masked by the lengths, so its id does not matter here.
    """

    def __init__(self, encoder_config: dict[str, Any], num_classes: int, dropout: float = 0.1,
                 freeze_encoder: bool = False, vocab_size: int | None = None, padding_idx: int | None = None) -> None:
        super().__init__()
        from transformers import AutoModelForSequenceClassification

        config = config_from_dict({**encoder_config, "num_labels": num_classes, "classifier_dropout": dropout})
        if vocab_size is not None and vocab_size > config.vocab_size:
            raise ValueError(f"the tokenizer has {vocab_size} tokens but the encoder only {config.vocab_size}")
        self.model = AutoModelForSequenceClassification.from_config(config)
        self.encoder.requires_grad_(not freeze_encoder)

    @property
    def encoder(self) -> nn.Module:
        """The pretrained part (embeddings and layers, BERT's pooler too): all but the new head."""
        return self.model.base_model

    def enable_gradient_checkpointing(self) -> None:
        """Keep only each layer's input in the forward pass and recompute the rest in the backward
        pass (the model's own activation_checkpointing_enable, gradient_checkpointing_enable in older
        transformers): less memory for more time."""
        options = {"use_reentrant": False}
        self.model.config.use_cache = False  # an encoder keeps no cache; said so, transformers need not warn
        if hasattr(self.model, "activation_checkpointing_enable"):
            self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=options)
        else:
            self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=options)

    def forward(self, inputs: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        token_ids, lengths = inputs  # (batch, time), (batch,)
        mask = length_mask(lengths, token_ids.size(1), token_ids.device)  # (batch, time)
        return self.model(input_ids=token_ids, attention_mask=mask.long()).logits  # (batch, num_classes)


def load_pretrained_weights(model: PretrainedClassifier, weights: dict[str, torch.Tensor]) -> None:
    """Copy pretrained encoder weights into `model.encoder`; a pooler the weights lack keeps its
    fresh initialisation, as transformers' from_pretrained leaves it."""
    own = model.encoder.state_dict()
    missing = sorted(name for name in set(own) - set(weights) if not name.startswith("pooler."))
    if missing:
        raise ValueError(f"the pretrained weights lack {len(missing)} of the encoder's tensors, e.g. {missing[0]}")
    model.encoder.load_state_dict({key: weights[key] for key in own if key in weights}, strict=False)
