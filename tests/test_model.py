"""The whole MultiModel: every embedded problem end to end, gradients, save/load, causality, cached
decoding, ablations and the hparam sets' sizes."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel import modalities
from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.model.multimodel import MODELS, MultiModel
from t2t_multimodel.problems import MIXTURES, PROBLEMS

MINI = MIXTURES.get("mm8_mini").problem_names
NO_DROPOUT = "dropout=0.0,attention_dropout=0.0"
TARGETS = np.array([[11, 12, 13, 14, 1, 0], [15, 16, 1, 0, 0, 0]], np.int32)


def _signatures(names):
  return [PROBLEMS.get(n).signature() for n in names]


def _features(problem, hp, seed=0):
  rng = np.random.default_rng(seed)
  sig = PROBLEMS.get(problem).signature()
  inputs = {
      "symbol": lambda: np.array([[5, 6, 7, 8, 9, 1, 0, 0], [10, 11, 1, 0, 0, 0, 0, 0]], np.int32),
      "image": lambda: rng.random((2, hp.image_size, hp.image_size, 3)).astype(np.float32),
      "audio": lambda: np.concatenate([rng.normal(size=(2, 6 * 2 ** hp.audio_time_strides, 80)),
                                       np.zeros((2, 2 * 2 ** hp.audio_time_strides, 80))], 1),
  }[sig["input_modality"]]()
  targets = {"symbol": lambda: TARGETS, "class_label": lambda: np.array([[3], [7]], np.int32)}
  return {"inputs": tf.constant(inputs, tf.int32 if sig["input_modality"] == "symbol" else tf.float32),
          "targets": tf.constant(targets[sig["target_modality"]]())}


@pytest.fixture(scope="module")
def model():
  tf.keras.utils.set_random_seed(0)
  m = MultiModel(get_hparams("multimodel_tiny", NO_DROPOUT), _signatures(MINI))
  m.build_all()
  return m


def test_registered_and_shares_modalities(model):
  assert MODELS.get("multimodel") is MultiModel
  # One symbol net for every text problem, one image and one audio net, one class-label head.
  assert sorted(model.modality_nets) == ["audio", "class_label_10", "image", "symbol"]


@pytest.mark.parametrize("problem", MINI)
def test_output_shapes_and_loss(model, problem):
  features = _features(problem, model.hp)
  logits = model(features, problem=problem)
  sig = PROBLEMS.get(problem).signature()
  text = sig["target_modality"] == "symbol"
  assert tuple(logits.shape) == ((2, 6, model.hp.vocab_size) if text else (2, sig["num_classes"]))
  loss, weight = model.problem_loss(problem, features, logits)
  assert np.isfinite(loss.numpy()) and loss > 0
  assert weight.numpy() == (8 if text else 2)


def _used_variables(problem, model):
  """Every trainable variable but other problems' modality nets (and the decoder for labels)."""
  sig = PROBLEMS.get(problem).signature()
  source = modalities.of(sig, "inputs")
  used = {modalities.of(sig, role).net_key(sig, source) for role in modalities.ROLES}
  excluded = {id(v) for key, net in model.modality_nets.items() if key not in used
              for v in net.trainable_variables}
  if sig["target_modality"] == "class_label":
    excluded |= {id(v) for v in model.target_side.trainable_variables}
  return [v for v in model.trainable_variables if id(v) not in excluded]


@pytest.mark.parametrize("problem", MINI)
def test_gradients_reach_every_variable(model, problem):
  features = _features(problem, model.hp)
  with tf.GradientTape() as tape:
    logits = model(features, problem=problem, training=True)
    loss = model.problem_loss(problem, features, logits)[0] + tf.add_n(model.losses)
  variables = _used_variables(problem, model)
  grads = tape.gradient(loss, variables)
  missing = [v.path for v, g in zip(variables, grads) if g is None]
  assert not missing
  dense = [tf.convert_to_tensor(g) for g in grads]
  assert all(np.isfinite(g.numpy()).all() for g in dense)
  zero = [v.path for v, g in zip(variables, dense) if not np.any(g.numpy())]
  assert not [p for p in zero if "gate" not in p and "noise" not in p]  # MoE gates start at zero


def test_moe_losses_in_model_losses(model):
  model(_features("translate_ende_bible", model.hp), problem="translate_ende_bible", training=True)
  assert len(model.losses) == 2 and all(float(l) >= 0 for l in model.losses)  # encoder + decoder
  model(_features("image_digits", model.hp), problem="image_digits", training=True)
  assert len(model.losses) == 1  # no decoder for class labels


def test_causality(model):
  problem = "translate_ende_bible"
  features = _features(problem, model.hp)
  base = model(features, problem=problem).numpy()
  changed = dict(features)
  changed["targets"] = tf.tensor_scatter_nd_update(features["targets"], [[0, 3]], [99])
  after = model(changed, problem=problem).numpy()
  np.testing.assert_allclose(after[0, :4], base[0, :4], atol=1e-5)  # target 3 feeds position 4 on
  assert np.abs(after[0, 4:] - base[0, 4:]).max() > 1e-4
  np.testing.assert_allclose(after[1], base[1], atol=1e-5)


def test_input_padding_changes_nothing(model):
  problem = "translate_ende_bible"
  features = _features(problem, model.hp)
  short = {"inputs": features["inputs"][:, :6], "targets": features["targets"]}
  np.testing.assert_allclose(model(short, problem=problem).numpy(),
                             model(features, problem=problem).numpy(), atol=1e-4)


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
    real = [b for b in range(2) if t == 0 or TARGETS[b, t - 1]]  # positions whose input is real
    np.testing.assert_allclose(logits.numpy()[real], full[real, t], atol=1e-5, rtol=1e-5)
    prev = features["targets"][:, t]
  assert step_fn.experimental_get_tracing_count() == 1  # one traced step serves every t


def test_summary_and_config_round_trip(model):
  lines = []
  model.summary(print_fn=lambda line, **unused: lines.append(line))
  assert "target_side" in "\n".join(lines) and f"{model.count_params():,}" in "\n".join(lines)
  config = model.get_config()
  clone = MultiModel.from_config(config)
  assert clone.get_config() == config
  clone.build_all()
  clone.set_weights(model.get_weights())
  features = _features("caption_emoji", model.hp)
  np.testing.assert_allclose(clone(features, problem="caption_emoji").numpy(),
                             model(features, problem="caption_emoji").numpy(), atol=1e-6)


def test_save_and_load_keras_format(model, tmp_path):
  path = str(tmp_path / "model.keras")
  model.save(path)
  loaded = keras.models.load_model(path)
  assert loaded.count_params() == model.count_params()
  for problem in ("translate_ende_bible", "image_digits", "speech_espeak"):
    features = _features(problem, model.hp)
    np.testing.assert_array_equal(model(features, problem=problem).numpy(),
                                  loaded(features, problem=problem).numpy())


def test_tf_checkpoint_of_the_model_alone_restores_every_weight(model, tmp_path):
  # mm-decoder restores tf.train.Checkpoint(model=...) without the optimizer, into a model whose
  # problems (and so the order its weights are created in) may come in another order.
  path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
  restored = MultiModel(model.hp, _signatures(MINI[::-1]))
  restored.build_all()
  tf.train.Checkpoint(model=restored).read(path).assert_consumed()
  for problem in ("translate_ende_bible", "image_digits", "speech_espeak"):
    features = _features(problem, model.hp)
    np.testing.assert_array_equal(model(features, problem=problem).numpy(),
                                  restored(features, problem=problem).numpy())


def test_unknown_problem_and_label_decoding_are_named(model):
  with pytest.raises(KeyError, match="'nope'.*translate_ende_bible"):
    model(_features("translate_ende_bible", model.hp), problem="nope")
  with pytest.raises(ValueError, match="problem='image_digits' with class_label targets"):
    model.encode(_features("image_digits", model.hp), "image_digits")


@pytest.mark.parametrize("override", ["use_moe=False", "use_attention=False",
                                      "use_moe=False,use_attention=False"])
def test_ablations_build_train_and_decode(override):
  hp = get_hparams("multimodel_tiny", f"{NO_DROPOUT},{override}")
  m = MultiModel(hp, _signatures(["image_digits", "translate_enfr_bible"]))
  features = _features("translate_enfr_bible", hp)
  full = m(features, problem="translate_enfr_bible", training=True)
  assert (len(m.losses) > 0) == hp.use_moe
  assert m(_features("image_digits", hp), problem="image_digits").shape == (2, 10)
  full = m(features, problem="translate_enfr_bible").numpy()
  state = m.encode(features, "translate_enfr_bible")
  cache = m.init_cache(state, 6)
  prev = tf.zeros([2], tf.int32)
  for t in range(3):
    logits, cache = m.decode_step(state, cache, prev, tf.constant(t), "translate_enfr_bible")
    np.testing.assert_allclose(logits.numpy(), full[:, t], atol=1e-5)
    prev = features["targets"][:, t]
  # Without attention the targets still see the inputs (through their pooled encoding).
  other = dict(features, inputs=tf.reverse(features["inputs"], [0]))
  assert np.abs(m(other, problem="translate_enfr_bible").numpy() - full).max() > 1e-4


@pytest.fixture
def mixed_precision():
  keras.mixed_precision.set_global_policy("mixed_float16")
  yield
  keras.mixed_precision.set_global_policy("float32")


def test_mixed_precision_forward_and_step(mixed_precision):
  hp = get_hparams("multimodel_tiny", NO_DROPOUT)
  m = MultiModel(hp, _signatures(["image_digits", "translate_ende_bible"]))
  for problem in ("image_digits", "translate_ende_bible"):
    features = _features(problem, hp)
    logits = m(features, problem=problem, training=True)
    assert logits.dtype == tf.float32 and np.isfinite(m.problem_loss(problem, features, logits)[0])
  features = _features("translate_ende_bible", hp)
  state = m.encode(features, "translate_ende_bible")
  logits, _ = m.decode_step(state, m.init_cache(state, 4), tf.zeros([2], tf.int32), tf.constant(0),
                            "translate_ende_bible")
  full = m(features, problem="translate_ende_bible")
  np.testing.assert_allclose(logits.numpy(), full[:, 0].numpy(), atol=2e-2)


def parameter_count(hp, names) -> int:
  """Parameters of a model, built with k experts per MoE; the other experts are counted."""
  small = dataclasses.replace(hp, num_experts=hp.moe_k)
  m = MultiModel(small, _signatures(names))
  m.build_all()
  d, f = hp.hidden_size, hp.filter_size
  per_expert = 2 * d * f + f + d + 2 * d  # two kernels, two biases, a gate and a noise column
  return m.count_params() + 2 * (hp.num_experts - hp.moe_k) * per_expert  # encoder + decoder MoE


def test_hparam_set_sizes():
  names = ["translate_ende_bible", "image_digits"]
  tiny = parameter_count(get_hparams("multimodel_tiny"), names)
  built = MultiModel(get_hparams("multimodel_tiny"), _signatures(names))
  built.build_all()
  assert tiny == built.count_params()  # the analytic expert count is exact
  base = parameter_count(get_hparams("multimodel_base"), names)
  assert 20e6 < base < 200e6
  paper = parameter_count(get_hparams("multimodel_paper"), names)
  assert paper > 1e9  # 2 MoE layers x 240 experts x 2 x 1024 x 4096


@pytest.mark.parametrize("use_moe, names, count", [
    (True, ["translate_ende_bible"], 2), (True, ["image_digits"], 1), (False, ["translate_ende_bible"], 0)])
def test_moe_layers_are_the_bodys(use_moe, names, count):
  hp = dataclasses.replace(get_hparams("multimodel_tiny"), use_moe=use_moe)
  layers = MultiModel(hp, _signatures(names)).moe_layers()
  assert len(layers) == count and all(type(layer).__name__ == "MixtureOfExperts" for layer in layers)
