"""leakage: normalised texts, whole-word runs, and no test or dev target of mm8_mini in its training text."""

import pytest

from t2t_multimodel.data import leakage
from t2t_multimodel.problem import Problem
from t2t_multimodel.problems import resolve


class _Texts(Problem):
  """A problem whose samples are given: {split: [(inputs, targets)]}."""

  def __init__(self, name, samples, input_modality="symbol", target_modality="symbol",
               metrics=("bleu",)):
    self.name, self.samples, self.metrics = name, samples, metrics
    self.input_modality, self.target_modality = input_modality, target_modality

  def generate_samples(self, split, tmp_dir):
    for inputs, targets in self.samples.get(split, []):
      yield {"inputs": inputs, "targets": targets}


@pytest.mark.parametrize("text, expected", [
    ("Don't be afraid, Abram!", "don t be afraid abram"),
    ("  Gnade euch -- und Friede ", "gnade euch und friede"),
    ("L'Éternel dit à Moïse: Va", "l éternel dit à moïse va"),
    ("1st_place medal", "1st place medal"),
    ("(S (NP XX )NP . )S", "s np xx np s"),
    ("...", ""),
])
def test_normalize(text, expected):
  assert leakage.normalize(text) == expected


def test_text_index_matches_whole_texts_and_long_whole_word_runs():
  index = leakage.TextIndex(["Grace be with you all. Amen.", "He said to them,", ""])
  assert len(index) == 2
  assert index.contains("GRACE be with you all, amen")       # equal once normalised
  assert index.contains("he said to them")                   # equal, 4 words
  assert index.contains("grace be with you all")             # 5 whole words inside a text
  assert not index.contains("be with you")                   # inside, but under 4 words
  assert not index.contains("race be with you all")          # not whole words ("grace")
  assert not index.contains("with you all amen and")         # runs past the text's end
  assert not index.contains("") and not index.contains("!")
  assert leakage.TextIndex(["Grace be with you all."], min_substring_words=1).contains("you")
  with pytest.raises(ValueError, match="Received: 0"):
    leakage.TextIndex([], min_substring_words=0)


def test_leaked_targets_counts_exact_and_inner_repeats_across_problems():
  source = _Texts("source", {"train": [("The quick brown fox jumps over the lazy dog.", "Hello, world!")]})
  held_out = _Texts("held_out", {"train": [("x", "A sentence of its own.")], "test": [
      ("a", "hello world"),                    # equals source's train target: leaks
      ("b", "quick brown fox jumps"),          # inside source's train input: leaks
      ("c", "a sentence of its own"),          # its own train text: leaks
      ("d", "brown fox"),                      # inside, but too short to count
      ("e", "the lazy dog sleeps all day"),    # new text
  ]})
  labels = _Texts("labels", {"train": [(b"png", 3)], "test": [(b"png", 3)]}, "image", "class_label")
  trees = _Texts("trees", {"train": [("Jesus wept .", "(S (NP XX )NP (VP XX )VP . )S")], "test": [
      ("Moses spoke .", "(S (NP XX )NP (VP XX )VP . )S"),   # same tree, new sentence: no leak
      ("Jesus wept .", "(S (NP XX )NP (VP XX )VP . )S"),    # a sentence seen in training: leaks
  ]}, metrics=("bracket_f1", "exact_match"))
  problems = [source, held_out, labels, trees]
  assert list(leakage.train_texts(problems)) == [
      "The quick brown fox jumps over the lazy dog.", "Hello, world!", "x", "A sentence of its own.",
      "Jesus wept .", "(S (NP XX )NP (VP XX )VP . )S"]
  assert leakage.leaked_targets(problems) == {"source": 0, "held_out": 3, "trees": 1}
  assert leakage.leaked_targets(problems, "dev") == {"source": 0, "held_out": 0, "trees": 0}
  with pytest.raises(ValueError, match="split='valid'"):
    leakage.leaked_targets(problems, "valid")


def test_text_samples_default_keeps_text_roles_only():
  problem = _Texts("mixed", {"test": [(b"png", "a caption")]}, "image", "symbol")
  assert list(problem.text_samples("test")) == [{"inputs": None, "targets": "a caption"}]


@pytest.fixture(scope="module")
def mm8_mini():
  return resolve("mm8_mini")


@pytest.mark.parametrize("split", ["test", "dev"])
def test_no_mm8_mini_target_is_training_text(mm8_mini, split):
  # Parses parse_trees' train split once (minutes on 2 cores); the check itself takes seconds.
  leaked = leakage.leaked_targets(mm8_mini, split)
  assert set(leaked) == {problem.name for problem in mm8_mini if problem.name != "image_digits"}
  assert leaked == dict.fromkeys(leaked, 0)


def test_text_samples_of_mm8_mini_match_their_samples(mm8_mini):
  """The overrides that skip audio and images yield the texts of generate_samples."""
  for problem in mm8_mini:
    if problem.target_modality == "symbol" and problem.name != "parse_trees":
      texts = list(problem.text_samples("dev"))
      samples = problem.generate_samples("dev", "")
      for text, sample in zip(texts[:3], samples):
        expected = {key: sample[key] if isinstance(sample[key], str) else None
                    for key in ("inputs", "targets")}
        assert text == expected, problem.name
