"""One tokenizer interface for the word vocabulary and for a pretrained model's subword tokenizer.

Both turn a question into token ids, cut to a maximum length, and know their padding id; both
save themselves as plain types (`state()`) into a checkpoint's `meta["tokenizer"]` and come back
from it (`tokenizer_from_meta`), so bucketing, sharding and padding exist once (data/text.py) and
a checkpoint classifies text with no network and no model folder.
"""
from __future__ import annotations

from typing import Any, Iterable, Protocol, Sequence

from data import DataError
from data.text import PAD, UNK, Vocabulary, build_vocabulary, tokenize, tokenize_raw


class TextTokenizer(Protocol):
    """What the text pipeline needs of a tokenizer."""

    pad_id: int
    vocab_size: int

    def encode(self, text: str, max_length: int) -> tuple[list[int], bool]:
        """Token ids of `text`, at most `max_length` of them, and whether it had to be cut."""

    def state(self) -> dict[str, Any]:
        """Plain types from which `tokenizer_from_meta` rebuilds this tokenizer."""


class WordTokenizer:
    """Lower-cased words looked up in a vocabulary built from the training questions."""

    def __init__(self, vocabulary: Vocabulary, split: str = "spaces") -> None:
        self.vocabulary = vocabulary
        self.pad_id, self.unknown_id = vocabulary.index[PAD], vocabulary.index[UNK]
        self.vocab_size = len(vocabulary)
        self.split = split  # "spaces" (TREC's words are separated already) or "punctuation" (raw text)
        self.tokenize = tokenize if split == "spaces" else tokenize_raw

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int, split: str = "spaces") -> "WordTokenizer":
        """A vocabulary of the words seen at least `min_freq` times in `texts`."""
        splitter = tokenize if split == "spaces" else tokenize_raw
        return cls(build_vocabulary((splitter(text) for text in texts), min_freq), split)

    def encode(self, text: str, max_length: int) -> tuple[list[int], bool]:
        tokens = self.tokenize(text)
        return self.vocabulary.encode(tokens[:max_length]), len(tokens) > max_length

    def state(self) -> dict[str, Any]:
        return {"kind": "words", "vocabulary": self.vocabulary.tokens,
                **({"split": self.split} if self.split != "spaces" else {})}


class SubwordTokenizer:
    """A pretrained model's fast tokenizer (WordPiece, BPE, ...), special tokens included; made from a
    loaded `tokenizers.Tokenizer` (utils.pretrained loads one from the hub or a folder)."""

    def __init__(self, backend: Any, pad_id: int, special_tokens: dict[str, str] | None = None) -> None:
        self.backend = backend  # a tokenizers.Tokenizer
        self.special_tokens = dict(special_tokens or {})  # e.g. {"cls_token": "[CLS]", ...}: for a saved copy
        self.backend.no_padding()  # batches are padded per batch, to their longest question
        self.pad_id, self.vocab_size = pad_id, backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, max_length: int) -> tuple[list[int], bool]:
        self.backend.enable_truncation(max_length)  # keeps [CLS] ... [SEP] around the cut question
        encoding = self.backend.encode(text)
        return list(encoding.ids), bool(encoding.overflowing)

    def state(self) -> dict[str, Any]:
        return {"kind": "subword", "json": self.backend.to_str(), "pad_id": self.pad_id,
                **({"special_tokens": self.special_tokens} if self.special_tokens else {})}


def tokenizer_from_meta(meta: dict[str, Any]) -> WordTokenizer | SubwordTokenizer:
    """The tokenizer a checkpoint was trained with, from its `meta` (plain types only)."""
    state = meta.get("tokenizer") or {"kind": "words", "vocabulary": meta.get("vocabulary")}
    if state.get("kind") == "words" and isinstance(state.get("vocabulary"), list) \
            and state["vocabulary"][:2] == [PAD, UNK]:
        return WordTokenizer(Vocabulary(state["vocabulary"]), "punctuation" if state.get("split") == "punctuation"
                             else "spaces")
    if state.get("kind") == "subword" and isinstance(state.get("json"), str) and isinstance(state.get("pad_id"), int):
        from tokenizers import Tokenizer

        try:
            specials = state.get("special_tokens")
            specials = {str(k): v for k, v in specials.items() if isinstance(v, str)} if isinstance(specials, dict) else {}
            tokenizer = SubwordTokenizer(Tokenizer.from_str(state["json"]), state["pad_id"], specials)
        except Exception as error:  # tokenizers raises its own exception type for malformed JSON
            raise DataError(f"the saved tokenizer cannot be rebuilt ({type(error).__name__})") from error
        if not 0 <= tokenizer.pad_id < tokenizer.vocab_size:
            raise DataError(f"the saved tokenizer's pad id {tokenizer.pad_id} is not one of its "
                            f"{tokenizer.vocab_size} tokens")
        return tokenizer
    raise DataError("the saved tokenizer is missing or malformed (expected words with <pad>, <unk> first, "
                    "or a subword tokenizer's JSON and pad id)")


def encode_all(tokenizer: TextTokenizer, texts: Sequence[str], max_length: int) -> tuple[list[list[int]], int]:
    """Token ids of every text, each cut to `max_length`, and how many had to be cut."""
    encoded = [tokenizer.encode(text, max_length) for text in texts]
    return [ids for ids, _ in encoded], sum(cut for _, cut in encoded)
