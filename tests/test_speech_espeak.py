"""speech_espeak: clean disjoint sentence splits, seeded voices, samples that encode and parse back."""

import itertools
import re

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.data import espeak, features, leakage
from t2t_multimodel.modalities import spectrogram
from t2t_multimodel.problem import CommandToken
from t2t_multimodel.problems import speech_espeak, translate_bible
from t2t_multimodel.problems.speech_espeak import SpeechEspeak
from t2t_multimodel.vocab import SubwordVocab
from tests.test_espeak import assert_same_speech

PROBLEM = SpeechEspeak()


def test_declaration():
  assert PROBLEM.name == "speech_espeak"
  assert (PROBLEM.input_modality, PROBLEM.target_modality) == ("audio", "symbol")
  assert PROBLEM.command == CommandToken.TO_TRANSCRIPT
  assert PROBLEM.metrics == ("wer",) and PROBLEM.train_shards == 16


@pytest.mark.parametrize("spoken, transcript", [
    ("Don't be afraid, Abram.", "don't be afraid abram"),
    ("Abram was eighty-six years old.", "abram was eighty six years old"),
    ("Who is blind, but my servant?", "who is blind but my servant"),
])
def test_normalize_transcript(spoken, transcript):
  assert speech_espeak.normalize_transcript(spoken) == transcript


def test_clean_clause_keeps_apostrophes_and_drops_what_espeak_would_misread():
  sentence = speech_espeak.clean_clause('"A city set on a hill can`t be hid.')
  assert sentence == ("A city set on a hill can't be hid.", "a city set on a hill can't be hid")
  assert speech_espeak.clean_clause("He shall offer of it his offering, the fat,") == (
      "He shall offer of it his offering, the fat", "he shall offer of it his offering the fat")
  for rejected in ["He had 12 sons and daughters.", "He shall offer [even] an offering.",
                   "and Resen between Nineveh (the great city).", "So Job died. BOOK I Psalm",
                   "You shall not murder;` and so on", "Selah.", "one two three four five six seven "
                   "eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen",
                   "chief Lotan, chief Shobal, chief Zibeon, chief Anah"]:
    assert speech_espeak.clean_clause(rejected) is None, rejected


def test_split_sizes_and_disjoint_sentences():
  splits = {split: PROBLEM.transcripts(split) for split in ("train", "dev", "test")}
  assert {split: len(t) for split, t in splits.items()} == {"train": 12000, "dev": 300, "test": 300}
  everything = list(itertools.chain.from_iterable(splits.values()))
  assert len(set(everything)) == len(everything)  # so train shares no sentence with dev or test
  for transcript in everything:
    assert re.fullmatch(r"[a-z']+( [a-z']+){3,15}", transcript), transcript


def test_splits_come_from_the_bible_splits_books_and_repeat_no_training_text():
  by_split = {split: set() for split in ("train", "dev", "test")}
  for book, verse in speech_espeak._verses():
    for clause in speech_espeak._CLAUSE_END.split(verse):
      sentence = speech_espeak.clean_clause(clause)
      if sentence is not None:
        by_split[translate_bible.split_of(book)].add(sentence.transcript)
  for split, transcripts in by_split.items():
    assert set(PROBLEM.transcripts(split)) <= transcripts, split
  train_verses = leakage.TextIndex(verse for book, verse in speech_espeak._verses()
                                   if translate_bible.split_of(book) == "train")
  for split in ("dev", "test"):
    assert not [t for t in PROBLEM.transcripts(split) if train_verses.contains(t)]
  candidates = speech_espeak.candidate_sentences()
  assert {split: len(sentences) for split, sentences in candidates.items()} == {
      "train": 29_868, "dev": 833, "test": 810}
  assert "your young men will see visions" in by_split["test"]   # Joel 2:28, quoted in Acts 2:17
  assert "your young men will see visions" not in candidates["test"]


def test_text_samples_are_the_transcripts_without_audio():
  assert list(PROBLEM.text_samples("test")) == [
      {"inputs": None, "targets": t} for t in PROBLEM.transcripts("test")]


def test_unknown_split_names_the_value():
  with pytest.raises(ValueError, match="split='validation'"):
    next(PROBLEM.generate_samples("validation", ""))


def test_vocab_texts_are_the_train_transcripts():
  assert list(PROBLEM.vocab_texts("")) == PROBLEM.transcripts("train")


def test_voices_are_seeded_varied_and_valid():
  voices = [speech_espeak.utterance_voice("train", i) for i in range(200)]
  assert voices == [speech_espeak.utterance_voice("train", i) for i in range(200)]
  assert voices != [speech_espeak.utterance_voice("dev", i) for i in range(200)]
  assert len({v.name.split("+")[0] for v in voices}) == len(speech_espeak.ACCENTS) >= 4
  assert {v.rate for v in voices} <= set(range(130, 211)) and len({v.rate for v in voices}) > 20
  assert {v.pitch for v in voices} <= set(range(40, 61))
  for accent, variant in itertools.product(speech_espeak.ACCENTS, speech_espeak.VARIANTS):
    assert len(espeak.synthesize("Amen.", espeak.Voice(accent + variant))) > 1000


@pytest.fixture(scope="module")
def dev_samples():
  return list(itertools.islice(PROBLEM.generate_samples("dev", ""), 4))


def test_samples_are_log_mel_features_and_transcripts(dev_samples):
  assert [s["targets"] for s in dev_samples] == PROBLEM.transcripts("dev")[:4]
  for index, sample in enumerate(dev_samples):
    inputs = sample["inputs"]
    assert inputs.ndim == 2 and inputs.shape[1] == spectrogram.NUM_MEL_BINS and inputs.shape[0] > 50
    assert np.isfinite(inputs).all() and inputs.std() > 1.0
    spoken = PROBLEM.sentences("dev")[index].spoken
    waveform = espeak.synthesize(spoken, speech_espeak.utterance_voice("dev", index))
    assert abs(inputs.shape[0] - len(waveform) / spectrogram.FRAME_STEP) <= 1.5  # 10 ms frames


def test_samples_encode_and_parse_back(dev_samples, tmp_path):
  vocab = SubwordVocab.build(PROBLEM.transcripts("train"), str(tmp_path / "v.model"), vocab_size=300)
  modalities = (PROBLEM.input_modality, PROBLEM.target_modality)
  parse = features.parse_fn(*modalities)
  for sample in dev_samples:
    serialized = features.encode_example(sample, *modalities, vocab)
    decoded = parse(tf.constant(serialized))
    np.testing.assert_allclose(decoded["inputs"].numpy(), sample["inputs"], atol=0.02, rtol=0.002)
    assert vocab.decode(decoded["targets"].numpy()) == sample["targets"]


def test_generation_is_repeatable_and_safe_to_interleave(dev_samples):
  """Same transcripts and voices, same speech up to eSpeak's flutter phase (see espeak.py)."""
  test_first = next(PROBLEM.generate_samples("test", ""))
  dev, test = PROBLEM.generate_samples("dev", ""), PROBLEM.generate_samples("test", "")
  again = [next(dev), next(test), next(dev)]
  for sample, expected in zip(again, [dev_samples[0], test_first, dev_samples[1]]):
    assert sample["targets"] == expected["targets"]
    assert_same_speech(sample["inputs"], expected["inputs"])
  assert again[1]["targets"] == PROBLEM.transcripts("test")[0]
