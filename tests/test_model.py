"""The whole MultiModel: every embedded problem end to end, save/load, causality, cached decoding."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.model import MODELS, MultiModel
from t2t_multimodel.problems import MIXTURES, PROBLEMS

MINI = MIXTURES.get("mm8_mini").problem_names
TINY = "dropout=0.0,attention_dropout=0.0"


def _features(problem, hp, seed=0):
  rng = np.random.default_rng(seed)
  sig = PROBLEMS.get(problem).signature()
  inputs = {
      "symbol": lambda: np.concatenate([rng.integers(3, 300, (2, 7)), np.ones((2, 1))], 1).astype(np.int32),
      "image": lambda: rng.random((2, hp.image_size, hp.image_size, 3)).astype(np.float32),
      "audio": lambda: rng.normal(size=(2, 8 * 2 ** hp.audio_time_strides, 80)).astype(np.float32),
  }[sig["input_modality"]]()
  targets = {"symbol": lambda: np.array([[11, 12, 13, 14, 1, 0], [15, 16, 1, 0, 0, 0]], np.int32),
             "class_label": lambda: np.array([[3], [7]], np.int32)}[sig["target_modality"]]()
  return {"inputs": tf.constant(inputs), "targets": tf.constant(targets)}


@pytest.fixture(scope="module")
def model():
  hp = get_hparams("multimodel_tiny", TINY)
  m = MultiModel(hp, [PROBLEMS.get(n).signature() for n in MINI])
  m.build_all()
  return m


def test_registered():
  assert MODELS.get("multimodel") is MultiModel


@pytest.mark.parametrize("problem", MINI)
def test_output_shapes_and_loss(model, problem):
  features = _features(problem, model.hp)
  logits = model(features, problem=problem)
  sig = PROBLEMS.get(problem).signature()
  expected = (2, sig["num_classes"]) if sig["target_modality"] == "class_label" else (2, 6, model.hp.vocab_size)
  assert tuple(logits.shape) == expected
  loss, weight = model.problem_loss(problem, features, logits)
  assert np.isfinite(loss.numpy()) and loss > 0
  assert weight.numpy() == (2 if sig["target_modality"] == "class_label" else 8)


def _owner_names(problem, model):
  """Variables the problem's forward pass must touch: everything but other problems' modality nets."""
  sig = PROBLEMS.get(problem).signature()
  used = {sig["input_modality"], "symbol" if sig["target_modality"] == "symbol"
          else f"class_label_{sig['num_classes']}"}
  unused_nets = [net for key, net in model.modality_nets.items() if key not in used]
  excluded = {id(v) for net in unused_nets for v in net.trainable_variables}
  if sig["target_modality"] == "class_label":  # the target side is not used by classification
    excluded |= {id(v) for v in model.target_side.trainable_variables}
  return [v for v in model.trainable_variables if id(v) not in excluded]


@pytest.mark.parametrize("problem", MINI)
def test_gradients_reach_every_variable(model, problem):
  features = _features(problem, model.hp)
  with tf.GradientTape() as tape:
    logits = model(features, problem=problem, training=True)
    loss = model.problem_loss(problem, features, logits)[0] + tf.add_n(model.losses)
  variables = _owner_names(problem, model)
  grads = tape.gradient(loss, variables)
  missing = [v.path for v, g in zip(variables, grads) if g is None]
  assert not missing
  assert all(np.isfinite(g.numpy()).all() for g in grads if not isinstance(g, tf.IndexedSlices))


def test_moe_loss_in_model_losses(model):
  model(_features("translate_ende_bible", model.hp), problem="translate_ende_bible", training=True)
  assert len(model.losses) == 2 and all(float(l) >= 0 for l in model.losses)


def test_causality(model):
  problem = "translate_ende_bible"
  features = _features(problem, model.hp)
  base = model(features, problem=problem).numpy()
  changed = dict(features)
  changed["targets"] = tf.tensor_scatter_nd_update(features["targets"], [[0, 3]], [99])
  after = model(changed, problem=problem).numpy()
  np.testing.assert_allclose(after[0, :4], base[0, :4], atol=1e-5)  # position 3 feeds 4 onward
  assert np.abs(after[0, 4:] - base[0, 4:]).max() > 1e-4


@pytest.mark.parametrize("problem", ["translate_ende_bible", "caption_emoji", "speech_espeak"])
def test_cached_steps_equal_full_prefix(model, problem):
  features = _features(problem, model.hp, seed=1)
  full = model(features, problem=problem).numpy()                          # [B, T, V]
  state = model.encode(features, problem)
  cache = model.init_cache(state, max_length=8)
  step_fn = tf.function(lambda s, c, ids, t: model.decode_step(s, c, ids, t, problem))
  prev = tf.zeros([2], tf.int32)
  for t in range(full.shape[1]):
    logits, cache = step_fn(state, cache, prev, tf.constant(t))
    np.testing.assert_allclose(logits.numpy(), full[:, t], atol=1e-4, rtol=1e-4)
    prev = features["targets"][:, t]


def test_save_and_load_keras_format(model, tmp_path):
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  for problem in ("translate_ende_bible", "image_digits", "speech_espeak"):
    features = _features(problem, model.hp)
    np.testing.assert_array_equal(model(features, problem=problem).numpy(),
                                  loaded(features, problem=problem).numpy())


@pytest.mark.parametrize("override", ["use_moe=False", "use_attention=False", "use_moe=False,use_attention=False"])
def test_ablations_build_and_decode(override):
  hp = get_hparams("multimodel_tiny", f"{TINY},{override}")
  problems = ["image_digits", "translate_enfr_bible"]
  m = MultiModel(hp, [PROBLEMS.get(n).signature() for n in problems])
  features = _features("translate_enfr_bible", hp)
  full = m(features, problem="translate_enfr_bible").numpy()
  assert m(_features("image_digits", hp), problem="image_digits").shape == (2, 10)
  state = m.encode(features, "translate_enfr_bible")
  logits, _ = m.decode_step(state, m.init_cache(state, 6), tf.zeros([2], tf.int32), tf.constant(0),
                            "translate_enfr_bible")
  np.testing.assert_allclose(logits.numpy(), full[:, 0], atol=1e-4)
  assert (len(m.losses) > 0) == ("use_moe=False" not in override)


def test_base_hparams_build():
  hp = get_hparams("multimodel_base")
  m = MultiModel(hp, [PROBLEMS.get(n).signature() for n in ("translate_ende_bible", "image_digits")])
  m.build_all()
  assert 20e6 < m.count_params() < 200e6
