"""The one shared subword vocabulary over every text problem (SentencePiece, 8k, byte fallback).

Built once by mm-datagen into `<data_dir>/vocab.mm8k.model`, reused by the
trainer and the decoder. Ids: 0 = PAD, 1 = EOS, 2 = UNK (T2T's convention).
Identity normalisation and byte fallback make encode/decode invertible on any
Unicode text. Symbols that problems ask for (`Problem.vocab_symbols`, e.g. a tree's "(NP") are
SentencePiece user-defined pieces, each written with the word-boundary mark it follows in text
("▁(NP"), so a symbol after a space is one id.
"""

from __future__ import annotations

import hashlib
import io
import os
from typing import Iterable, Sequence

import sentencepiece as spm

VOCAB_FILENAME = "vocab.mm8k.model"
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
NUM_RESERVED_IDS = 3
WORD_BOUNDARY = "\u2581"  # SentencePiece's "▁", the space before a word.


class SubwordVocab:
  """Encodes text to ids and back.

  Args:
    model_path: a SentencePiece model file.

  Example:
    >>> vocab = SubwordVocab.build(texts, "/tmp/data/vocab.mm8k.model")
    >>> vocab.decode(vocab.encode("Guten Tag"))
    'Guten Tag'
  """

  def __init__(self, model_path: str):
    self.model_path = model_path
    with open(model_path, "rb") as f:
      self.model_proto = f.read()
    self._sp = spm.SentencePieceProcessor(model_proto=self.model_proto)

  @classmethod
  def build(cls, texts: Iterable[str], model_path: str, vocab_size: int = 8192,
            symbols: Sequence[str] = ()) -> "SubwordVocab":
    """Trains the model on `texts` and writes it atomically to `model_path`; each of `symbols`
    (no spaces in one) becomes one piece where it follows a space or starts the text."""
    if any(not symbol or symbol != symbol.strip() or " " in symbol for symbol in symbols):
      raise ValueError(f"Expected `symbols` without spaces. Received: symbols={list(symbols)!r}")
    buffer = io.BytesIO()
    lines = (t.replace("\n", " ") for t in texts if t)
    spm.SentencePieceTrainer.train(
        sentence_iterator=lines, model_writer=buffer,
        vocab_size=vocab_size, hard_vocab_limit=False, model_type="unigram",
        character_coverage=1.0, byte_fallback=True, normalization_rule_name="identity",
        remove_extra_whitespaces=False, split_digits=True,
        pad_id=PAD_ID, eos_id=EOS_ID, unk_id=UNK_ID, bos_id=-1,
        user_defined_symbols=[WORD_BOUNDARY + symbol for symbol in dict.fromkeys(symbols)],
        input_sentence_size=2_000_000, shuffle_input_sentence=True, seed_sentencepiece_size=1_000_000,
        num_threads=os.cpu_count() or 1, minloglevel=2)
    tmp = f"{model_path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
      f.write(buffer.getvalue())
    os.replace(tmp, model_path)
    return cls(model_path)

  @property
  def size(self) -> int:
    return self._sp.get_piece_size()

  @property
  def sha256(self) -> str:
    return hashlib.sha256(self.model_proto).hexdigest()

  def encode(self, text: str) -> list[int]:
    """Text -> ids, without EOS."""
    return self._sp.encode(text)

  def decode(self, ids: Sequence[int]) -> str:
    """Ids -> text; stops at the first EOS and skips PAD and ids outside the vocabulary."""
    ids = [int(i) for i in ids]
    if EOS_ID in ids:
      ids = ids[:ids.index(EOS_ID)]
    return self._sp.decode([i for i in ids if PAD_ID < i < self.size])

  def pieces(self, text: str) -> list[str]:
    return self._sp.encode(text, out_type=str)

  def missing_symbols(self, symbols: Iterable[str]) -> list[str]:
    """The `symbols` that are not one piece of this vocabulary (after a space)."""
    return [s for s in symbols if self._sp.piece_to_id(WORD_BOUNDARY + s) in (UNK_ID, PAD_ID)]


def vocab_path(data_dir: str) -> str:
  return os.path.join(data_dir, VOCAB_FILENAME)


def load_vocab(data_dir: str) -> SubwordVocab:
  path = vocab_path(data_dir)
  if not os.path.exists(path):
    raise FileNotFoundError(f"No vocabulary at {path}; run mm-datagen with --data_dir={data_dir} first.")
  return SubwordVocab(path)
