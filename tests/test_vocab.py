"""The shared SentencePiece vocabulary: reserved ids and an exact round trip on any text."""

import pytest

from t2t_multimodel.vocab import EOS_ID, PAD_ID, SubwordVocab, load_vocab

TEXTS = [
    "In the beginning God created the heavens and the earth.",
    "Im Anfang schuf Gott die Himmel und die Erde.",
    "Au commencement, Dieu créa les cieux et la terre.",
    "(S (NP XX XX )NP (VP XX (NP XX XX )NP )VP XX )S",
    "grinning face with big eyes",
] * 40


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
  path = tmp_path_factory.mktemp("vocab") / "vocab.mm8k.model"
  return SubwordVocab.build(TEXTS, str(path), vocab_size=300)


@pytest.mark.parametrize("text", sorted(set(TEXTS)) + [
    "Ünïcödé ✓ 漢字 🙂 — unseen «text»", "  two  spaces and a\ttab ", "", "123 4567"])
def test_round_trip_is_exact(vocab, text):
  ids = vocab.encode(text)
  assert PAD_ID not in ids and EOS_ID not in ids
  assert vocab.decode(ids) == text
  assert vocab.decode(ids + [EOS_ID, 17, 18]) == text  # decoding stops at EOS


def test_reserved_ids(vocab):
  assert vocab.pieces("a")  # non-empty
  assert vocab._sp.pad_id() == PAD_ID and vocab._sp.eos_id() == EOS_ID


def test_load_and_sha(vocab, tmp_path):
  assert SubwordVocab(vocab.model_path).sha256 == vocab.sha256
  with pytest.raises(FileNotFoundError, match="run mm-datagen"):
    load_vocab(str(tmp_path))


def test_symbols_are_one_piece_each_and_text_still_round_trips(tmp_path):
  symbols = ("(NP", ")NP", "(S", ")S", "XX")
  vocab = SubwordVocab.build(TEXTS, str(tmp_path / "v.model"), vocab_size=300, symbols=symbols)
  tree = "(S (NP XX XX )NP )S"
  assert vocab.pieces(tree) == ["▁(S", "▁(NP", "▁XX", "▁XX", "▁)NP", "▁)S"]
  assert vocab.missing_symbols(symbols + ("(VP",)) == ["(VP"]
  for text in (tree, "XXL (NPR) Das ist (S gut", "a(NP"):
    assert vocab.decode(vocab.encode(text)) == text


def test_symbols_with_spaces_are_refused(tmp_path):
  with pytest.raises(ValueError, match="without spaces"):
    SubwordVocab.build(TEXTS, str(tmp_path / "v.model"), vocab_size=300, symbols=("(NP XX",))
