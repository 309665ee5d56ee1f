"""A tiny pretrained BERT and its WordPiece tokenizer, written with save_pretrained as the hub's models
are, and a tiny timm network in timm's folder format, so that loading, fine-tuning and export are tested
without the network or ../shared/models."""
from __future__ import annotations

import os

import torch

from tiny_data import TREC_TEMPLATES


def tiny_bert_config() -> dict:
    """A BERT-style encoder small enough for tests (plain dict, as a checkpoint keeps it)."""
    from transformers import BertConfig

    config = BertConfig(vocab_size=TINY_VOCAB_SIZE, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=64).to_dict()
    return {key: value for key, value in config.items() if key not in ("architectures", "_name_or_path")}


TINY_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TINY_WORDS = sorted({word.lower() for templates in TREC_TEMPLATES.values() for t in templates[1]
                     for word in t.replace("{w}", "").split()} |
                    {"paris", "nasa", "lincoln", "tiger", "river", "moon", "radio", "tea", "who", "wrote", "hamlet"})
TINY_VOCAB_SIZE = len(TINY_SPECIAL) + len(TINY_WORDS) + 4  # a few more rows than tokens, as real models have


def write_tiny_pretrained(folder: str, seed: int = 0) -> str:
    """A tiny BERT and its WordPiece tokenizer, written with save_pretrained as the hub's models are."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(TINY_SPECIAL + TINY_WORDS)}
    backend = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                            sep_token="[SEP]", mask_token="[MASK]").save_pretrained(folder)
    torch.manual_seed(seed)
    BertModel(BertConfig(**tiny_bert_config())).save_pretrained(folder)
    return folder


def write_tiny_timm(folder: str, input_size: int = 32, crop_pct: float = 0.875, seed: int = 0,
                    weights: bool = True, dtype: str = "float32") -> str:
    """A folder in timm's format holding a tiny timm network (test_efficientnet, 1,000 classes, random
    weights drawn with `seed`): config.json with its architecture and pretrained_cfg, and (`weights`)
    model.safetensors in `dtype`."""
    import json

    import timm
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = timm.create_model("test_efficientnet", num_classes=1000)
    os.makedirs(folder, exist_ok=True)
    config = {"architecture": "test_efficientnet", "num_classes": 1000, "num_features": model.num_features,
              "model_args": {"in_chans": 3, "num_classes": 1000},
              "pretrained_cfg": {"input_size": [3, input_size, input_size], "interpolation": "bicubic",
                                 "crop_pct": crop_pct, "crop_mode": "center", "mean": [0.5, 0.4, 0.3],
                                 "std": [0.2, 0.25, 0.3], "classifier": "classifier", "first_conv": "conv_stem"}}
    with open(os.path.join(folder, "config.json"), "w", encoding="utf-8") as file:
        json.dump(config, file)
    if weights:
        save_file({key: value.to(getattr(torch, dtype)).contiguous() for key, value in model.state_dict().items()},
                  os.path.join(folder, "model.safetensors"))
    return folder
