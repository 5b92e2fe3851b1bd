"""parse_wsj8k: Penn Treebank WSJ constituency parsing (the paper's task), on data the user brings.

Files: the Penn Treebank 3 (LDC99T42) WSJ .mrg files, anywhere under `<tmp_dir>/ptb/`; the
standard layout is `<tmp_dir>/ptb/treebank_3/parsed/mrg/wsj/NN/wsj_NNNN.mrg`, but every
`wsj_SSNN.mrg` found below `ptb/` is read, its section SS taken from its name. Each file holds
many trees, each in the PTB's label-less wrapper "( (S ...) )".

Splits, the standard ones: sections 02-21 train (39,832 trees in the full treebank), 22 dev
(1,700), 23 test (2,416); sections 00, 01 and 24 are not read.

Samples (as parse_trees, see `t2t_multimodel.data.trees`): trees cleaned as is standard (-NONE-
elements and emptied constituents removed, function tags and indices stripped); inputs: the
words joined by single spaces (-LRB- -> "(", ...); targets: the Vinyals et al. (2015)
linearisation, POS tags written XX but for punctuation. Files in name order, trees in file order.
"""

from __future__ import annotations

import os
import re
from typing import Iterator

from t2t_multimodel.data import trees
from t2t_multimodel.problem import CommandToken, MissingDataError, Problem, Sample, SPLITS

SECTIONS = {"train": range(2, 22), "dev": range(22, 23), "test": range(23, 24)}
_FILE_NAME = re.compile(r"^wsj_(\d\d)\d\d\.mrg$", re.IGNORECASE)


def find_files(root: str) -> dict[str, list[str]]:
  """{"train"|"dev"|"test": the wsj_*.mrg paths of its sections under `root`, sorted by name}."""
  found: dict[str, list[str]] = {split: [] for split in SPLITS}
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames.sort()
    for name in filenames:
      match = _FILE_NAME.match(name)
      if match:
        section = int(match.group(1))
        for split, sections in SECTIONS.items():
          if section in sections:
            found[split].append(os.path.join(dirpath, name))
  return {split: sorted(paths, key=os.path.basename) for split, paths in found.items()}


def read_mrg(path: str) -> list[trees.Tree]:
  """The cleaned trees of one .mrg file; ValueError naming the file if it is not bracketed trees."""
  with open(path, encoding="latin-1") as f:
    text = f.read()
  try:
    raw = trees.read_bracketed(text)
  except ValueError as error:
    raise ValueError(f"{path}: {error}") from None
  return [tree for tree in (trees.clean(t) for t in raw) if tree is not None]


def sample_of(tree: trees.Tree) -> Sample:
  return {"inputs": trees.sentence(tree), "targets": trees.linearize(tree)}


class ParseWsj(Problem):
  """WSJ constituency parsing: words -> linearised tree (see the module docstring).

  Example:
    >>> problem = ParseWsj()
    >>> problem.check_data("/data/tmp")     # MissingDataError says where to put the treebank
    >>> test = problem.generate_samples("test", "/data/tmp")    # section 23, one sample a tree
    >>> sample_of(trees.clean(trees.read_bracketed("( (S (NP-SBJ (PRP It) ) (VP (VBD rose) ) (. .) ))")[0]))
    {'inputs': 'It rose .', 'targets': '(S (NP XX )NP (VP XX )VP . )S'}
  """

  name = "parse_wsj8k"
  input_modality = "symbol"
  target_modality = "symbol"
  command = CommandToken.TO_PARSE_TREE
  metrics = ("bracket_f1", "exact_match")
  vocab_symbols = trees.LINEAR_SYMBOLS
  train_shards = 4
  full_data = True
  description = "Penn Treebank WSJ (sections 02-21 / 22 / 23) -> linearised tree"

  def files(self, tmp_dir: str) -> dict[str, list[str]]:
    """The .mrg files of each split; MissingDataError (one line) if a split has none."""
    root = os.path.join(tmp_dir, "ptb")
    found = find_files(root) if os.path.isdir(root) else {split: [] for split in SPLITS}
    if not any(found.values()):
      raise MissingDataError(
          f"parse_wsj8k needs the Penn Treebank 3 (LDC99T42): copy its treebank_3/parsed/mrg/wsj/ "
          f"folders (00-24, files wsj_*.mrg) to {root}/treebank_3/parsed/mrg/wsj/")
    empty = [split for split in SPLITS if not found[split]]
    if empty:
      wanted = {"train": "02-21", "dev": "22", "test": "23"}
      raise MissingDataError(
          f"parse_wsj8k found no wsj_*.mrg files of section(s) "
          f"{', '.join(wanted[s] for s in empty)} ({', '.join(empty)}) under {root}/ (Penn Treebank 3, "
          f"LDC99T42, treebank_3/parsed/mrg/wsj/)")
    return found

  def check_data(self, tmp_dir: str) -> None:
    self.files(tmp_dir)

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    if split not in SPLITS:
      raise ValueError(f"Expected `split` in {SPLITS}. Received: split={split!r}")
    for path in self.files(tmp_dir)[split]:
      for tree in read_mrg(path):
        yield sample_of(tree)
