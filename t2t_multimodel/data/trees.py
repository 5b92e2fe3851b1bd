"""Constituency trees: Penn Treebank brackets, Vinyals et al. (2015) linearisation, EVALB-style scores.

Two formats:
  bracketed   the Penn Treebank's, "( (S (NP-SBJ (NNP John)) (VP (VBZ has) ...) (. .)) )", many
              trees a file; "(" with no label is the PTB's wrapper.
  linearised  "Grammar as a Foreign Language" (Vinyals et al. 2015): depth first, an opening bracket
              carries its label, the closing one repeats it, words are left out and each word's
              POS tag stands in its place: "(S (NP XX )NP (VP XX (NP XX XX )NP )VP . )S".

Preprocessing (`clean`, the standard one for PTB parsing): -NONE- elements (traces, null
elements) are removed, and so is every constituent left empty; function tags and indices are
stripped (NP-SBJ-1 -> NP, PP-LOC=2 -> PP, ADVP|PRT -> ADVP); labels that start with "-" (-LRB-,
-NONE-) are kept whole; the label-less wrapper (or TOP/ROOT) over one tree is removed.

POS tags (`linearize(tree, keep_pos=False)`): Vinyals et al. write every tag as XX; so do we,
except the five punctuation tags that EVALB's COLLINS.prm deletes (, : `` '' .), which are kept,
so that a linearised reference alone says which positions are punctuation. keep_pos=True keeps all.

Scores, EVALB with COLLINS.prm, on either format (a string with a labelled closing bracket ")X",
or with no ")" at all, is linearised; otherwise it is read as bracketed):
  - a bracket is (label, start, end) over the sentence's pre-terminal positions; pre-terminals are
    not brackets (tagging is not scored), nor is a root wrapper ("", TOP, ROOT);
  - positions whose reference tag is punctuation are deleted from both trees before spans are
    taken, so a bracket over punctuation only disappears; a prediction's positions past the
    reference's end are never punctuation; ADVP and PRT are one label (EQ_LABEL);
  - brackets are a multiset (a unary chain X -> X counts twice and matches at most twice);
  - precision = matched / predicted, recall = matched / reference, F1 their harmonic mean, in
    0-100; corpus scores come from counts summed over sentences, as in EVALB's summary; a
    sentence with nothing predicted where there is nothing to find scores 100, but a corpus of
    no sentences is an error (ValueError), not a score;
  - a prediction is first repaired (`delinearize`), then every one of its brackets is scored:
    one longer than the reference keeps all its positions and brackets (the extra brackets
    count as predicted, so precision falls); one shorter gets XX positions added under its root
    so that spans can be taken (padding adds no bracket). EVALB would skip a sentence of the
    wrong length instead; we score it, so that no predicted bracket goes unscored. An
    unreadable bracketed prediction has no brackets;
  - `exact_match` is EVALB's complete match: a valid prediction (no repair needed) of the
    reference's length whose brackets are exactly the reference's.

Repair (`delinearize`): tokens are "(X" (open), ")X" or ")" (close), anything else a pre-terminal; a
closing bracket closes the innermost open one whatever its label, and is dropped when none is open;
brackets still open at the end are closed; brackets with nothing under them are dropped; several
top-level trees (or loose tags) are put under one wrapper (label "", not scored).
"""

from __future__ import annotations

import collections
import dataclasses
import re
from typing import Iterable, Sequence, Union

PUNCTUATION_TAGS = frozenset({",", ":", "``", "''", "."})   # EVALB COLLINS.prm DELETE_LABEL
ROOT_LABELS = frozenset({"", "TOP", "ROOT"})
EQUAL_LABELS = {"PRT": "ADVP"}                               # EVALB COLLINS.prm EQ_LABEL
NORMALIZED_TAG = "XX"
# The Penn Treebank's phrase labels (Bies et al. 1995, section 1.3), function tags stripped.
PHRASE_LABELS = ("ADJP", "ADVP", "CONJP", "FRAG", "INTJ", "LST", "NAC", "NP", "NX", "PP", "PRN",
                 "PRT", "QP", "RRC", "S", "SBAR", "SBARQ", "SINV", "SQ", "UCP", "VP", "WHADJP",
                 "WHADVP", "WHNP", "WHPP", "X")
# Every token `linearize` writes: each phrase label's opening and closing bracket, XX and the kept
# punctuation tags. Parsing problems ask the shared vocabulary to keep each one whole (one piece):
# split into subwords, "(NP" is 2 pieces and "XX" 3, and a 57-symbol tree 131 tokens.
LINEAR_SYMBOLS = tuple(f"{side}{label}" for label in PHRASE_LABELS for side in "()") + (
    NORMALIZED_TAG,) + tuple(sorted(PUNCTUATION_TAGS))
BRACKET_WORDS = {"-LRB-": "(", "-RRB-": ")", "-LCB-": "{", "-RCB-": "}", "-LSB-": "[", "-RSB-": "]"}
_BRACKET_TOKEN = re.compile(r"\(|\)|[^\s()]+")
_LINEARISED = re.compile(r"\)[^\s()]")

Bracket = tuple[str, int, int]   # (label, start, end): positions [start, end)


@dataclasses.dataclass
class Tree:
  """A constituent: a label and its children, subtrees or strings (words, or tags in a skeleton).

  A pre-terminal is a Tree whose only child is a string: Tree("NN", ["dog"]). A skeleton (what a
  linearisation holds) has the tags themselves as string leaves: Tree("NP", ["XX", "XX"]).

  Example:
    >>> tree = read_bracketed("(S (NP (NNP John)) (VP (VBZ runs)) (. .))")[0]
    >>> linearize(tree)
    '(S (NP XX )NP (VP XX )VP . )S'
  """

  label: str
  children: list[Union["Tree", str]]

  def is_preterminal(self) -> bool:
    return len(self.children) == 1 and isinstance(self.children[0], str)

  def leaves(self) -> list[str]:
    """The string leaves, left to right (words, or tags in a skeleton)."""
    out: list[str] = []
    for child in self.children:
      out.extend([child] if isinstance(child, str) else child.leaves())
    return out

  def preterminals(self) -> list["Tree"]:
    if self.is_preterminal():
      return [self]
    return [p for c in self.children if isinstance(c, Tree) for p in c.preterminals()]

  def __str__(self) -> str:
    inner = " ".join(str(c) for c in self.children)
    return f"({self.label} {inner})" if self.label else f"( {inner})"


# --- Bracketed trees. -----------------------------------------------------------------------------


def read_bracketed(text: str) -> list[Tree]:
  """Every tree in `text` (e.g. a whole .mrg file); ValueError naming the position if unbalanced."""
  tokens = [(m.group(), m.start()) for m in _BRACKET_TOKEN.finditer(text)]
  trees, stack, i = [], [], 0
  while i < len(tokens):
    token, at = tokens[i]
    if token == "(":
      has_label = i + 1 < len(tokens) and tokens[i + 1][0] not in "()"
      stack.append(Tree(tokens[i + 1][0] if has_label else "", []))
      i += 2 if has_label else 1
      continue
    if token == ")":
      if not stack:
        raise ValueError(f"Unbalanced tree: ')' with no open bracket at character {at}: {text[at:at + 40]!r}")
      node = stack.pop()
      (stack[-1].children if stack else trees).append(node)
    elif stack:
      stack[-1].children.append(token)
    else:
      raise ValueError(f"Unbalanced tree: word {token!r} outside brackets at character {at}")
    i += 1
  if stack:
    raise ValueError(f"Unbalanced tree: {len(stack)} bracket(s) left open at the end of {text[:40]!r}...")
  return trees


def strip_function_tags(label: str) -> str:
  """NP-SBJ-1 -> NP, PP-LOC=2 -> PP, ADVP|PRT -> ADVP; -NONE-, -LRB- and '' stay as they are."""
  if not label or label.startswith("-"):
    return label
  return re.split(r"[-=]", label.split("|")[0])[0] or label


def clean(tree: Tree) -> Tree | None:
  """The standard PTB preprocessing (module docstring); None if nothing is left."""
  cleaned = _clean(tree)
  while (cleaned is not None and cleaned.label in ROOT_LABELS and len(cleaned.children) == 1
         and isinstance(cleaned.children[0], Tree) and not cleaned.children[0].is_preterminal()):
    cleaned = cleaned.children[0]
  if cleaned is not None and cleaned.label == "":
    cleaned.label = "TOP"
  return cleaned


def _clean(tree: Tree) -> Tree | None:
  if tree.is_preterminal():
    return None if tree.label == "-NONE-" else Tree(tree.label, list(tree.children))
  children = [c if isinstance(c, str) else _clean(c) for c in tree.children]
  children = [c for c in children if c is not None]
  return Tree(strip_function_tags(tree.label), children) if children else None


def sentence(tree: Tree) -> str:
  """The words of a bracketed tree, space-joined, the PTB's bracket words made brackets again."""
  return " ".join(BRACKET_WORDS.get(p.children[0], p.children[0]) for p in tree.preterminals())


# --- Linearisation. -------------------------------------------------------------------------------


def skeleton(tree: Tree) -> Tree:
  """A bracketed tree with each pre-terminal replaced by its tag (not for skeletons: a unary
  phrase over one tag, Tree("NP", ["XX"]), would read as a pre-terminal)."""
  return Tree(tree.label, [c if isinstance(c, str) else c.label if c.is_preterminal() else skeleton(c)
                           for c in tree.children])


def normalize_tag(tag: str) -> str:
  return tag if tag in PUNCTUATION_TAGS else NORMALIZED_TAG


def linearize(tree: Tree, keep_pos: bool = False) -> str:
  """A bracketed tree -> its linearisation, "(S (NP XX )NP ... )S"."""
  return linearize_skeleton(skeleton(tree), keep_pos)


def linearize_skeleton(tree: Tree, keep_pos: bool = True) -> str:
  """A skeleton (e.g. from `delinearize`) -> its linearisation; a root wrapper "" is left out."""
  return " ".join(_linear_tokens(tree, keep_pos))


def _linear_tokens(node: Tree, keep_pos: bool) -> list[str]:
  tokens = [f"({node.label}"] if node.label else []
  for child in node.children:
    if isinstance(child, str):
      tokens.append(child if keep_pos else normalize_tag(child))
    else:
      tokens.extend(_linear_tokens(child, keep_pos))
  return tokens + [f"){node.label}"] if node.label else tokens


def validate(text: str) -> str | None:
  """None for a well-formed linearised tree, else what is wrong with it (one line)."""
  tokens = text.split()
  if not tokens or not tokens[0].startswith("("):
    return "it does not start with an opening bracket"
  stack: list[str] = []
  for i, token in enumerate(tokens):
    if token == "(":
      return f"token {i} opens a bracket with no label"
    if token.startswith("("):
      if i and not stack:
        return f"token {i} ({token}) starts a second tree"
      stack.append(token[1:])
    elif token.startswith(")"):
      if not stack:
        return f"token {i} ({token}) closes a bracket that is not open"
      if tokens[i - 1].startswith("("):
        return f"token {i} ({token}) closes an empty bracket"
      if token[1:] != stack.pop():
        return f"token {i} ({token}) does not match its opening bracket"
    elif not stack:
      return f"token {i} ({token}) is outside every bracket"
  return f"{len(stack)} bracket(s) left open" if stack else None


def is_valid(text: str) -> bool:
  return validate(text) is None


def delinearize(text: str) -> Tree:
  """A linearised tree -> its skeleton, repaired if need be (module docstring); never raises."""
  stack = [Tree("", [])]

  def close() -> None:
    node = stack.pop()
    if node.children:
      stack[-1].children.append(node)

  for token in text.split():
    if token.startswith("(") and len(token) > 1:
      stack.append(Tree(token[1:], []))
    elif token.startswith(")") and len(stack) > 1:
      close()
    elif token[0] not in "()":
      stack[-1].children.append(token)
  while len(stack) > 1:
    close()
  root = stack[0]
  return root.children[0] if len(root.children) == 1 and isinstance(root.children[0], Tree) else root


# --- Scores. --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class BracketCounts:
  """EVALB's counts for one sentence or summed over a corpus; scores in 0-100.

  Example:
    >>> counts = bracket_counts("(S (NP XX )NP XX )S", "(S (NP XX )NP (VP XX )VP )S")
    >>> counts.matched, counts.predicted, counts.reference, round(counts.f1, 1)
    (2, 2, 3, 80.0)
  """

  matched: int = 0
  predicted: int = 0
  reference: int = 0
  complete: int = 0    # sentences whose prediction matches exactly (`exact_match`)
  sentences: int = 0

  def __add__(self, other: "BracketCounts") -> "BracketCounts":
    return BracketCounts(*(a + b for a, b in zip(dataclasses.astuple(self), dataclasses.astuple(other))))

  @property
  def precision(self) -> float:
    if not self.predicted:
      return 100.0 if not self.reference else 0.0
    return 100.0 * self.matched / self.predicted

  @property
  def recall(self) -> float:
    if not self.reference:
      return 100.0 if not self.predicted else 0.0
    return 100.0 * self.matched / self.reference

  @property
  def f1(self) -> float:
    p, r = self.precision, self.recall
    return 2 * p * r / (p + r) if p + r else 0.0


def _is_linearised(text: str) -> bool:
  return ")" not in text or _LINEARISED.search(text) is not None


def _reference_skeleton(text: str) -> Tree:
  if _is_linearised(text):
    return delinearize(text)
  trees = read_bracketed(text)
  if len(trees) != 1 or clean(trees[0]) is None:
    raise ValueError(f"Expected one bracketed reference tree. Received: {text!r}")
  return skeleton(clean(trees[0]))


def _predicted_skeleton(text: str) -> tuple[Tree, bool]:
  """(skeleton, valid): the prediction repaired, and whether it needed no repair."""
  if _is_linearised(text):
    return delinearize(text), is_valid(text)
  try:
    trees = read_bracketed(text)
  except ValueError:
    return Tree("", []), False
  tree = clean(trees[0]) if len(trees) == 1 else None
  return (skeleton(tree), True) if tree is not None else (Tree("", []), False)


def _pad(tree: Tree, length: int) -> Tree:
  """The skeleton with at least `length` positions: missing ones added as XX under its root.

  A longer skeleton is returned whole: its extra positions and brackets are scored.
  """
  missing = length - len(tree.leaves())
  return Tree(tree.label, tree.children + [NORMALIZED_TAG] * missing) if missing > 0 else tree


def brackets(tree: Tree, deleted: Sequence[bool] = ()) -> collections.Counter[Bracket]:
  """The multiset of (label, start, end) of a skeleton, `deleted` positions taken out (see above).

  Positions past the end of `deleted` are kept (a prediction longer than its reference).
  """
  positions = len(tree.leaves())
  deleted = list(deleted) + [False] * (positions - len(deleted))
  kept_before = [0]
  for gone in deleted:
    kept_before.append(kept_before[-1] + (not gone))
  found: collections.Counter[Bracket] = collections.Counter()

  def visit(node: Tree, start: int) -> int:
    end = start
    for child in node.children:
      end = end + 1 if isinstance(child, str) else visit(child, end)
    if node.label not in ROOT_LABELS and kept_before[start] < kept_before[end]:
      found[(EQUAL_LABELS.get(node.label, node.label), kept_before[start], kept_before[end])] += 1
    return end

  visit(tree, 0)
  return found


def bracket_counts(predicted: str, reference: str) -> BracketCounts:
  """EVALB's counts for one sentence (module docstring); ValueError for an unreadable bracketed reference."""
  gold = _reference_skeleton(reference)
  tags = gold.leaves()
  deleted = [tag in PUNCTUATION_TAGS for tag in tags]
  guess, valid = _predicted_skeleton(predicted)
  same_length = len(guess.leaves()) == len(tags)
  gold_brackets, guess_brackets = brackets(gold, deleted), brackets(_pad(guess, len(tags)), deleted)
  matched = sum((gold_brackets & guess_brackets).values())
  complete = valid and same_length and gold_brackets == guess_brackets
  return BracketCounts(matched, sum(guess_brackets.values()), sum(gold_brackets.values()), int(complete), 1)


def bracket_f1(predicted: str, reference: str) -> float:
  """Labelled bracket F1 of one sentence, 0-100."""
  return bracket_counts(predicted, reference).f1


def exact_match(predicted: str, reference: str) -> bool:
  """EVALB's complete match: valid, the reference's length, exactly the reference's brackets."""
  return bool(bracket_counts(predicted, reference).complete)


def corpus_bracket_counts(predictions: Iterable[str], references: Iterable[str]) -> BracketCounts:
  """Counts summed over aligned sentences; ValueError if the lists differ in length or are empty."""
  predictions, references = list(predictions), list(references)
  if len(predictions) != len(references):
    raise ValueError(f"Expected as many predictions as references. "
                     f"Received: {len(predictions)} predictions, {len(references)} references")
  if not predictions:
    raise ValueError("Expected at least one (prediction, reference) pair to score. "
                     "Received: no examples (0 predictions, 0 references)")
  total = BracketCounts()
  for predicted, reference in zip(predictions, references):
    total = total + bracket_counts(predicted, reference)
  return total


def corpus_bracket_f1(predictions: Iterable[str], references: Iterable[str]) -> float:
  """Corpus labelled bracket F1 from summed counts (EVALB's summary), 0-100; ValueError if empty."""
  return corpus_bracket_counts(predictions, references).f1
