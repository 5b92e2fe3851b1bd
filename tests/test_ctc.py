"""The auxiliary CTC loss (model/ctc.py) against brute force, and how the model adds it."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.model.ctc import ctc_loss
from t2t_multimodel.model.multimodel import MultiModel
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.vocab import PAD_ID
from tests.test_model import NO_DROPOUT, _features


def _collapse(path):
  """CTC's many-to-one map: merge repeats, then drop blanks (PAD_ID)."""
  merged = [label for label, _ in itertools.groupby(path)]
  return [label for label in merged if label != PAD_ID]


def _brute_force_nll(logits, length, labels):
  """-log of the summed probability of every frame labelling that collapses to `labels`."""
  log_probs = tf.nn.log_softmax(logits[:length]).numpy()                 # [S, V]
  total = 0.0
  for path in itertools.product(range(logits.shape[-1]), repeat=length):
    if _collapse(path) == list(labels):
      total += np.exp(sum(log_probs[t, c] for t, c in enumerate(path)))
  return -np.log(total)


def test_equals_brute_force_with_repeats_padding_and_uneven_lengths():
  rng = np.random.default_rng(0)
  logits = tf.constant(rng.normal(size=(3, 5, 4)), tf.float32)            # V=4, blank = 0
  lengths = [5, 4, 3]
  mask = tf.sequence_mask(lengths, 5)
  labels = [[2, 2, 3], [1, 3, 0], [3, 0, 0]]                              # a repeat needs a blank between
  expected = sum(_brute_force_nll(logits[i], lengths[i], [l for l in labels[i] if l]) for i in range(3))
  tokens = 3 + 2 + 1
  assert float(ctc_loss(logits, mask, tf.constant(labels))) == pytest.approx(expected / tokens, rel=1e-5)


def test_an_example_that_cannot_be_aligned_or_has_no_labels_is_left_out_with_no_gradient():
  logits = tf.Variable(tf.random.stateless_normal([4, 4, 5], seed=[1, 2]))
  mask = tf.constant([[True] * 4, [True, True, False, False], [True] * 4, [False] * 4])
  labels = tf.constant([[3, 4], [3, 3], [0, 0], [2, 0]])  # [3, 3] needs 3 positions; no labels; none
  with tf.GradientTape() as tape:
    loss = ctc_loss(logits, mask, labels)
  alone = ctc_loss(logits[:1], mask[:1], labels[:1])
  assert np.isfinite(float(loss)) and float(loss) == pytest.approx(float(alone))
  grad = tape.gradient(loss, logits).numpy()
  assert not grad[1:].any() and grad[0].any()


def _model(weight):
  """Without MoE layers (their training-time gating noise is random, and they add losses too)."""
  tf.keras.utils.set_random_seed(0)
  hp = get_hparams("multimodel_tiny", f"{NO_DROPOUT},use_moe=False,audio_ctc_weight={weight}")
  names = ["speech_espeak", "translate_ende_bible"]
  model = MultiModel(hp, [PROBLEMS.get(n).signature() for n in names])
  model.build_all()
  return model


def test_the_model_adds_the_weighted_loss_for_audio_inputs_in_training_only():
  model, plain = _model(0.5), _model(0.0)
  features = _features("speech_espeak", model.hp)
  model(features, problem="speech_espeak", training=True)
  plain(features, problem="speech_espeak", training=True)
  assert not plain.losses
  [term] = model.losses
  encoded, mask, _ = model._encode(features["inputs"], "speech_espeak", training=True)
  top = model._net("speech_espeak", "targets")
  expected = 0.5 * float(ctc_loss(top.top(encoded), mask, features["targets"]))
  assert expected > 0 and float(term) == pytest.approx(expected, rel=1e-5)
  model(features, problem="speech_espeak", training=False)
  assert not model.losses                                                 # inference: no CTC
  model(_features("translate_ende_bible", model.hp), problem="translate_ende_bible", training=True)
  assert not model.losses                                                 # text inputs: no CTC


def test_its_gradient_reaches_the_audio_bottom_and_the_shared_softmax():
  model = _model(1.0)
  features = _features("speech_espeak", model.hp)
  with tf.GradientTape() as tape:
    model(features, problem="speech_espeak", training=True)
    [ctc] = model.losses
  variables = (model._net("speech_espeak", "inputs").trainable_variables
               + model._net("speech_espeak", "targets").softmax.trainable_variables)
  grads = tape.gradient(ctc, variables)
  assert all(g is not None and np.any(tf.convert_to_tensor(g).numpy()) for g in grads)
