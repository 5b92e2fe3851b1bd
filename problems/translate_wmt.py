"""translate_{ende,deen,enfr,fren}_wmt8k: WMT'14 English-German and English-French, on data the user brings.

Sources, in this order:
1. The TFDS builder `wmt14_translate/de-en` or `/fr-en`, if already prepared in
   the TFDS data dir (see `tfds_source.py`): its train, validation
   (newstest2013) and test (newstest2014) splits.
2. Files under `<tmp_dir>/wmt/` (any depth), as WMT distributes them:
   - line-aligned plain text pairs `<stem>.<lang>` (optionally `.gz`), e.g.
     `europarl-v7.de-en.de` + `europarl-v7.de-en.en`, `newstest2013.de` + `.en`;
   - two-column TSV files whose name holds the pair, `<name>.<l1>-<l2>.tsv`
     (optionally `.gz`), columns in the order of the name, e.g.
     `news-commentary-v14.de-en.tsv`;
   - SGML test sets `<set>-src.<lang>.sgm` / `<set>-ref.<lang>.sgm`, e.g.
     `newstest2014-deen-src.de.sgm` + `newstest2014-deen-ref.en.sgm`: the text of
     every `<seg ...>...</seg>` in order, XML entities (&amp; ...) unescaped.

Splits of the raw files: a corpus whose name holds "newstest2013" is dev, one
with "newstest2014" is test; other news test sets ("newstest", "newsdev",
"newssyscomb" in the name) are not used; every other corpus is train. Dev and
test read one corpus each, the SGML one if both an SGML and a plain-text copy are
there (WMT's dev.tgz holds both). Lines are stripped; a pair with an empty side
is skipped. Aligned files must have the same number of lines.

`vocab_texts` reads at most VOCAB_PAIRS train pairs, taken in turn from every
train corpus, so that the shared vocabulary sees each of them.
"""

from __future__ import annotations

import gzip
import itertools
import os
import re
from typing import Iterator, NamedTuple
from xml.sax import saxutils

from t2t_multimodel.data import tfds_source
from t2t_multimodel.problem import CommandToken, MissingDataError, Problem, Sample

TFDS_NAME = "wmt14_translate"
LANGUAGES = {"en": "English", "de": "German", "fr": "French"}
COMMANDS = {"en": CommandToken.TO_ENGLISH, "de": CommandToken.TO_GERMAN, "fr": CommandToken.TO_FRENCH}
EVAL_SETS = {"dev": "newstest2013", "test": "newstest2014"}
TFDS_SPLITS = {"train": "train", "dev": "validation", "test": "test"}
VOCAB_PAIRS = 1_000_000
_NEWS_TEST = re.compile(r"newstest|newsdev|newssyscomb")
_SGM = re.compile(r"^(?P<set>.+)-(?:src|ref)\.(?P<lang>[a-z]{2,3})\.sgm$")
_SEG = re.compile(r"<seg[^>]*>(.*?)</seg>")
_XML_ENTITIES = {"&quot;": '"', "&apos;": "'"}


class Corpus(NamedTuple):
  """One parallel corpus: its name, its format ("text", "tsv" or "sgm") and its file(s)."""

  name: str
  kind: str
  paths: tuple[str, ...]   # text/sgm: (file of language 1, file of language 2); tsv: (file,)
  swap: bool = False       # tsv: True if column 0 holds language 2


def _open_text(path: str):
  """Only "\n" ends a line: a stray "\r" inside a sentence (Common Crawl has some) keeps files aligned."""
  if path.endswith(".gz"):
    return gzip.open(path, "rt", encoding="utf-8", newline="\n")
  return open(path, encoding="utf-8", newline="\n")


def _lines(path: str) -> Iterator[str]:
  with _open_text(path) as f:
    for line in f:
      yield line.rstrip("\r\n")


def read_sgm(path: str) -> list[str]:
  """The segments of a WMT SGML file, in order (not an XML parser: WMT's files are not all valid XML)."""
  with _open_text(path) as f:
    return [saxutils.unescape(seg, _XML_ENTITIES).strip() for line in f for seg in _SEG.findall(line)]


def find_corpora(root: str, lang1: str, lang2: str) -> list[Corpus]:
  """Every parallel corpus of the pair under `root` (module docstring), sorted by path."""
  corpora = []
  pair = re.compile(rf"\.({lang1}-{lang2}|{lang2}-{lang1})\.tsv(\.gz)?$")
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    names = set(filenames)
    for name in sorted(filenames):
      path = os.path.join(dirpath, name)
      for gz in ("", ".gz"):
        stem = name[:-len(f".{lang1}{gz}")] if name.endswith(f".{lang1}{gz}") else None
        if stem and f"{stem}.{lang2}{gz}" in names:
          corpora.append(Corpus(stem, "text", (path, os.path.join(dirpath, f"{stem}.{lang2}{gz}"))))
      match = pair.search(name)
      if match:
        swap = match.group(1) != f"{lang1}-{lang2}"
        corpora.append(Corpus(name[:match.start()], "tsv", (path,), swap=swap))
    corpora.extend(_sgm_corpora(dirpath, sorted(filenames), lang1, lang2))
  return corpora


def _sgm_corpora(dirpath: str, filenames: list[str], lang1: str, lang2: str) -> list[Corpus]:
  by_set: dict[str, dict[str, str]] = {}
  for name in filenames:
    match = _SGM.match(name)
    if match:
      by_set.setdefault(match.group("set"), {}).setdefault(match.group("lang"), os.path.join(dirpath, name))
  return [Corpus(set_name, "sgm", (files[lang1], files[lang2]))
          for set_name, files in sorted(by_set.items()) if lang1 in files and lang2 in files]


def split_corpora(corpora: list[Corpus], split: str) -> list[Corpus]:
  """The corpora of `split`: train = all but news test sets; dev/test = one newstest2013/2014 corpus."""
  if split == "train":
    return [c for c in corpora if not _NEWS_TEST.search(c.name)]
  matching = [c for c in corpora if EVAL_SETS[split] in c.name]
  matching.sort(key=lambda c: c.kind != "sgm")   # stable: the first SGML corpus, else the first other one
  return matching[:1]


def read_pairs(corpus: Corpus) -> Iterator[tuple[str, str]]:
  """(language 1, language 2) sentence pairs of a corpus, stripped, without empty sides."""
  if corpus.kind == "tsv":
    pairs = (tuple(line.split("\t")[:2]) for line in _lines(corpus.paths[0]))
    pairs = ((b, a) if corpus.swap else (a, b) for a, b in (p for p in pairs if len(p) == 2))
  elif corpus.kind == "sgm":
    first, second = (read_sgm(path) for path in corpus.paths)
    _check_aligned(corpus, len(first), len(second))
    pairs = zip(first, second)
  else:
    pairs = _aligned_lines(corpus)
  for a, b in pairs:
    if a.strip() and b.strip():
      yield a.strip(), b.strip()


def _aligned_lines(corpus: Corpus) -> Iterator[tuple[str, str]]:
  for a, b in itertools.zip_longest(*(_lines(p) for p in corpus.paths)):
    if a is None or b is None:   # One file ended first: count both to say by how much.
      _check_aligned(corpus, *(sum(1 for _ in _lines(p)) for p in corpus.paths))
    yield a, b


def _check_aligned(corpus: Corpus, n1: int, n2: int) -> None:
  if n1 != n2:
    raise MissingDataError(f"WMT corpus {corpus.name} is not aligned: {corpus.paths[0]} has {n1} "
                           f"sentences but {corpus.paths[-1]} has {n2}")


class TranslateWmt(Problem):
  """WMT'14 translation from `source` to `target` (en<->de, en<->fr); see the module docstring.

  Args:
    source, target: language codes, one of them "en" and the other "de" or "fr".

  Example:
    >>> problem = TranslateWmt("en", "de")          # translate_ende_wmt8k, command To-German
    >>> problem.check_data("/data/tmp")            # MissingDataError says where to put WMT'14
    >>> next(problem.generate_samples("test", "/data/tmp"))["targets"]    # a newstest2014 reference
  """

  input_modality = target_modality = "symbol"
  metrics = ("bleu", "accuracy", "neg_log_perplexity")
  train_shards = 100
  dev_shards = 1
  test_shards = 1
  full_data = True

  def __init__(self, source: str, target: str):
    pair = {source, target}
    if "en" not in pair or len(pair) != 2 or not pair <= {"en", "de", "fr"}:
      raise ValueError(
          f"Expected English and German or French. Received: source={source!r}, target={target!r}")
    self.source, self.target = source, target
    self.other = (pair - {"en"}).pop()          # TFDS config "de-en" / "fr-en"
    self.name = f"translate_{source}{target}_wmt8k"
    self.command = COMMANDS[target]
    self.description = f"WMT'14 {LANGUAGES[source]} -> {LANGUAGES[target]} (newstest2014 as test)"

  def _source(self, tmp_dir: str) -> tuple[str, str | list[Corpus]]:
    """("tfds", builder dir) or ("raw", corpora); MissingDataError if neither is there."""
    config = f"{self.other}-en"
    builder_dir = tfds_source.prepared_dir(TFDS_NAME, config)
    if builder_dir and not tfds_source.missing_splits(builder_dir, list(TFDS_SPLITS.values())):
      return "tfds", builder_dir
    root = os.path.join(tmp_dir, "wmt")
    corpora = find_corpora(root, self.source, self.target) if os.path.isdir(root) else []
    absent = [split for split in ("train", "dev", "test") if not split_corpora(corpora, split)]
    if not absent:
      return "raw", corpora
    raise MissingDataError(
        f"{self.name} needs WMT'14 {self.other}-en ({', '.join(absent)} not found): put aligned text pairs "
        f"(e.g. europarl-v7.{config}.{self.other} + .en), newstest2013 (dev) and newstest2014 (test, "
        f".sgm or text) in {root}/ (or prepare the TFDS builder {TFDS_NAME}/{config} in "
        f"{tfds_source.data_dir()})")

  def check_data(self, tmp_dir: str) -> None:
    self._source(tmp_dir)

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    for source_text, target_text in self._pairs(split, tmp_dir):
      yield {"inputs": source_text, "targets": target_text}

  def _pairs(self, split: str, tmp_dir: str) -> Iterator[tuple[str, str]]:
    kind, where = self._source(tmp_dir)
    if kind == "tfds":
      for example in tfds_source.read_split(where, TFDS_SPLITS[split]):
        source_text = example[self.source].decode("utf-8").strip()
        target_text = example[self.target].decode("utf-8").strip()
        if source_text and target_text:
          yield source_text, target_text
      return
    for corpus in split_corpora(where, split):
      yield from read_pairs(corpus)

  def vocab_texts(self, tmp_dir: str) -> Iterator[str]:
    kind, where = self._source(tmp_dir)
    if kind == "tfds":
      pairs = self._pairs("train", tmp_dir)
    else:   # One pair from each train corpus in turn.
      streams = [read_pairs(c) for c in split_corpora(where, "train")]
      pairs = (p for group in itertools.zip_longest(*streams) for p in group if p is not None)
    for source_text, target_text in itertools.islice(pairs, VOCAB_PAIRS):
      yield source_text
      yield target_text
