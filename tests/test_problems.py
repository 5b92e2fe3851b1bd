"""Every registered problem and mixture: declarations, examples that encode and parse, missing data."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.data import features
from t2t_multimodel.problem import CommandToken, MissingDataError, SPLITS
from t2t_multimodel.problems import MIXTURES, PROBLEMS, resolve
from t2t_multimodel.registry import UnknownNameError
from t2t_multimodel.vocab import SubwordVocab

KNOWN_METRICS = {"accuracy", "accuracy_top5", "neg_log_perplexity", "bleu", "wer", "bracket_f1",
                 "exact_match"}
EMBEDDED = [n for n in PROBLEMS.names() if not PROBLEMS.get(n).full_data]
FULL = [n for n in PROBLEMS.names() if PROBLEMS.get(n).full_data]
SAMPLES_PER_SPLIT = 6


def test_the_sixteen_problems_and_two_mixtures():
  assert len(EMBEDDED) == 8 and len(FULL) == 8
  assert set(MIXTURES.get("mm8_mini").problem_names) == set(EMBEDDED)
  assert set(MIXTURES.get("mm8_paper").problem_names) == set(FULL)


@pytest.mark.parametrize("name", PROBLEMS.names())
def test_declaration(name):
  problem = PROBLEMS.get(name)
  assert problem.name == name
  assert isinstance(problem.command, CommandToken)
  assert set(problem.metrics) <= KNOWN_METRICS
  assert problem.command.display_name in problem.summary()
  assert problem.signature()["command"] == int(problem.command)


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
  texts = itertools.chain.from_iterable(
      itertools.islice(PROBLEMS.get(n).vocab_texts(""), 50) for n in EMBEDDED if PROBLEMS.get(n).has_text)
  return SubwordVocab.build(texts, str(tmp_path_factory.mktemp("vocab") / "v.model"), vocab_size=500)


def _check_decoded(modality, raw, decoded, vocab, problem):
  if modality == "symbol":
    assert decoded.dtype == np.int64 and decoded[-1] == 1
    assert vocab.decode(decoded) == raw
  elif modality == "image":
    assert decoded.ndim == 3 and decoded.shape[-1] == 3 and 0.0 <= decoded.min() <= decoded.max() <= 1.0
  elif modality == "audio":
    assert decoded.shape == raw.shape and np.allclose(decoded, raw, atol=0.05 * np.abs(raw).max())
  else:
    assert 0 <= decoded[0] == raw < problem.num_classes


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_examples_encode_and_parse(name, vocab):
  problem = PROBLEMS.get(name)
  parse = features.parse_fn(problem.input_modality, problem.target_modality)
  for split in SPLITS:
    samples = list(itertools.islice(problem.generate_samples(split, ""), SAMPLES_PER_SPLIT))
    assert len(samples) == SAMPLES_PER_SPLIT, split
    for sample in samples:
      serialized = features.encode_example(sample, problem.input_modality, problem.target_modality, vocab)
      decoded = {k: v.numpy() for k, v in parse(tf.constant(serialized)).items()}
      _check_decoded(problem.input_modality, sample["inputs"], decoded["inputs"], vocab, problem)
      _check_decoded(problem.target_modality, sample["targets"], decoded["targets"], vocab, problem)


@pytest.mark.parametrize("name", FULL)
def test_full_data_missing_is_one_line(name, tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  with pytest.raises(MissingDataError) as info:
    PROBLEMS.get(name).check_data(str(tmp_path))
  message = str(info.value)
  assert "\n" not in message and str(tmp_path) in message


def test_resolve_mixture_and_list():
  assert [p.name for p in resolve("mm8_mini")] == list(MIXTURES.get("mm8_mini").problem_names)
  assert [p.name for p in resolve("image_digits, parse_trees,image_digits")] == ["image_digits", "parse_trees"]
  with pytest.raises(UnknownNameError, match=r"Unknown problem 'image_digit'. Did you mean 'image_digits'\?"):
    resolve("image_digit")
  with pytest.raises(UnknownNameError, match="Known mixtures: mm8_mini, mm8_paper"):
    resolve("mm9")
