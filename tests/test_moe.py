"""The sparsely-gated mixture of experts: routing, sparse dispatch, capacity, balancing loss."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.hparams import HParams, HParamsError, get_hparams
from t2t_multimodel.hparams.base import MOE_DISPATCH_MODES
from t2t_multimodel.layers.moe import (DISPATCH_MODES, MixtureOfExperts, _prob_in_top_k,
                                       cv_squared)
from t2t_multimodel.model import MultiModel
from t2t_multimodel.problems import PROBLEMS

D, E, F = 8, 5, 12
MODES = ["loop", "padded", "capacity"]  # "capacity" without drops (see `_moe`) in shared tests.


def _moe(num_experts: int = E, k: int = 2, gate_scale: float = 1.0, **kwargs) -> MixtureOfExperts:
  """A built layer with random gate weights (zero-initialised gates route every token alike).

  "capacity" gets a factor of E / k unless told (C = N rows per expert: nothing is dropped).
  """
  if kwargs.get("dispatch") == "capacity":
    kwargs.setdefault("capacity_factor", num_experts / k)
  moe = MixtureOfExperts(num_experts, k, F, seed=3, **kwargs)
  moe.build((None, None, D))
  rng = np.random.default_rng(0)
  moe.gate_kernel.assign(gate_scale * rng.normal(size=(D, num_experts)).astype("float32"))
  for weight in (moe.bias_1, moe.bias_2):  # Non-zero biases so that they are tested too.
    weight.assign(rng.normal(size=weight.shape).astype("float32"))
  return moe


def _x(batch: int = 3, time: int = 7, seed: int = 1) -> tf.Tensor:
  return tf.constant(np.random.default_rng(seed).normal(size=(batch, time, D)), tf.float32)


def _dense_reference(moe: MixtureOfExperts, x, mask=None):
  """Every expert on every token, weighted by the layer's own (noise-free) gates: [B, T, D]."""
  tokens = tf.reshape(x, [-1, D])  # [N, D]
  valid = None if mask is None else tf.reshape(mask, [-1])  # [N]
  routing = moe.gating(tokens, valid, training=False)
  full_gates = tf.einsum("nk,nke->ne", routing.gates,
                         tf.one_hot(routing.experts, moe.num_experts))  # [N, E]
  h = tf.nn.relu(tf.einsum("nd,edf->nef", tokens, moe.kernel_1) + moe.bias_1)  # [N, E, F]
  out = tf.einsum("nef,efd->ned", h, moe.kernel_2) + moe.bias_2  # [N, E, D]
  return tf.reshape(tf.einsum("ne,ned->nd", full_gates, out), tf.shape(x))  # [B, T, D]


@pytest.mark.parametrize("dispatch", MODES)
def test_output_shape_and_unknown_dims_under_tf_function(dispatch):
  moe = MixtureOfExperts(num_experts=4, k=2, filter_size=16, dispatch=dispatch)
  assert moe(_x()).shape == (3, 7, D)
  call = tf.function(lambda x: moe(x, training=True), jit_compile=False,
                     input_signature=[tf.TensorSpec([None, None, D], tf.float32)])
  assert call(_x(2, 5)).shape == (2, 5, D)
  assert call(_x(4, 1)).shape == (4, 1, D)
  assert [w.shape for w in moe.trainable_weights] == [(D, 4), (D, 4), (4, D, 16), (4, 16),
                                                      (4, 16, D), (4, D)]


def test_get_config_round_trip():
  moe = MixtureOfExperts(num_experts=6, k=3, filter_size=10, noise_eps=0.5, loss_coef=0.1,
                         seed=4, dispatch="capacity", capacity_factor=2.0, name="moe")
  config = moe.get_config()
  clone = MixtureOfExperts.from_config(config)
  assert clone.get_config() == config
  assert (clone.num_experts, clone.k, clone.filter_size, clone.noise_eps, clone.loss_coef,
          clone.seed, clone.dispatch, clone.capacity_factor) == (6, 3, 10, 0.5, 0.1, 4,
                                                                 "capacity", 2.0)
  # A config saved before `capacity_factor` existed loads with the default.
  old = {key: value for key, value in config.items() if key != "capacity_factor"}
  assert MixtureOfExperts.from_config(old).capacity_factor == 1.25
  x = _x()
  moe(x)
  clone(x)
  clone.set_weights(moe.get_weights())
  np.testing.assert_allclose(clone(x), moe(x), atol=1e-6)


def test_saved_model_loads_back(tmp_path):
  inputs = keras.Input((None, D))
  model = keras.Model(inputs, MixtureOfExperts(num_experts=E, k=2, filter_size=F)(inputs))
  model.layers[-1].gate_kernel.assign(np.random.default_rng(0).normal(size=(D, E)))
  model.save(tmp_path / "moe.keras")
  loaded = keras.models.load_model(tmp_path / "moe.keras")
  x = _x()
  np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
  assert isinstance(loaded.layers[-1], MixtureOfExperts)


@pytest.mark.parametrize("dispatch", MODES)
@pytest.mark.parametrize("k", [1, 2, E])
def test_matches_dense_reference_with_its_gradients(k, dispatch):
  moe, x = _moe(k=k, dispatch=dispatch), _x()
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    y = moe(x, training=False)
    reference = _dense_reference(moe, x)
    probe = tf.constant(np.random.default_rng(2).normal(size=x.shape), tf.float32)
    loss, loss_ref = tf.reduce_sum(y * probe), tf.reduce_sum(reference * probe)
  np.testing.assert_allclose(y, reference, atol=1e-5)
  sources = [x] + moe.trainable_weights
  grads, grads_ref = tape.gradient(loss, sources), tape.gradient(loss_ref, sources)
  for source, grad, grad_ref in zip(sources, grads, grads_ref):
    if source is moe.noise_kernel:  # Unused without noise (training=False).
      assert grad is None and grad_ref is None
    else:
      np.testing.assert_allclose(grad, grad_ref, atol=1e-5)


def test_every_expert_used_when_k_equals_num_experts():
  moe = _moe(k=E)
  routing = moe.gating(tf.reshape(_x(), [-1, D]), training=True)
  assert sorted(np.unique(routing.experts).tolist()) == list(range(E))
  np.testing.assert_allclose(routing.load, np.full(E, 21.0))  # Every token counts everywhere.
  np.testing.assert_allclose(tf.reduce_sum(routing.gates, axis=1), np.ones(21), atol=1e-6)


@pytest.mark.parametrize("dispatch", MODES)
def test_masked_tokens_give_zero_and_do_not_count(dispatch):
  moe, x = _moe(dispatch=dispatch), _x()
  mask = tf.constant(np.random.default_rng(5).random((3, 7)) < 0.6)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    y = moe(x, mask=mask)
    reference = _dense_reference(moe, x, mask)
    loss, loss_ref = tf.reduce_sum(y * x), tf.reduce_sum(reference * x)
  np.testing.assert_allclose(y, reference, atol=1e-5)
  assert np.all(y.numpy()[~mask.numpy()] == 0.0)
  sources = [x, moe.gate_kernel, moe.kernel_1, moe.bias_2]
  grads, grads_ref = tape.gradient(loss, sources), tape.gradient(loss_ref, sources)
  for grad, grad_ref in zip(grads, grads_ref):
    np.testing.assert_allclose(grad, grad_ref, atol=1e-5)
  assert np.all(tape.gradient(y, x).numpy()[~mask.numpy()] == 0.0)
  # Importance and load equal those of the valid tokens alone (eval: the routed counts).
  tokens, valid = tf.reshape(x, [-1, D]), tf.reshape(mask, [-1])
  masked = moe.gating(tokens, valid)
  alone = moe.gating(tf.boolean_mask(tokens, valid))
  np.testing.assert_allclose(masked.importance, alone.importance, atol=1e-6)
  np.testing.assert_allclose(masked.load, alone.load)
  assert float(tf.reduce_sum(masked.load)) == 2 * int(tf.reduce_sum(tf.cast(mask, tf.int32)))


def test_masked_tokens_do_not_count_in_the_smooth_training_load():
  moe = _moe()
  moe.noise_kernel.assign(np.full((D, E), 0.1, "float32"))
  tokens = tf.reshape(_x(), [-1, D])  # [21, D]
  valid = tf.constant(np.arange(21) % 3 != 0)
  changed = tf.where(valid[:, None], tokens, 100.0)  # Only the padding tokens change.
  state = moe.seed_generator.state.numpy()
  first = moe.gating(tokens, valid, training=True)
  moe.seed_generator.state.assign(state)  # The same noise again.
  second = moe.gating(changed, valid, training=True)
  for a, b in [(first.importance, second.importance), (first.load, second.load)]:
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert float(tf.reduce_sum(first.importance)) == pytest.approx(14.0, abs=1e-4)


@pytest.mark.parametrize("dispatch", MODES)
def test_all_tokens_masked(dispatch):
  moe, x = _moe(dispatch=dispatch), _x()
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = moe(x, mask=tf.zeros([3, 7], tf.bool))
  assert y.shape == (3, 7, D) and np.all(y.numpy() == 0.0)
  assert np.all(tape.gradient(y, x).numpy() == 0.0)


def test_prob_in_top_k_is_the_exact_probability_for_a_fresh_own_noise():
  rng = np.random.default_rng(0)
  clean = rng.normal(size=(4, 6)).astype("float32")
  stddev = rng.uniform(0.5, 2.0, size=(4, 6)).astype("float32")
  noisy = clean + stddev * rng.normal(size=(4, 6)).astype("float32")
  k = 2
  top = -np.sort(-noisy, axis=1)[:, :k + 1]
  prob = _prob_in_top_k(tf.constant(clean), tf.constant(noisy), tf.constant(stddev),
                        tf.constant(top), k).numpy()
  for n in range(4):
    for e in range(6):
      others = np.delete(noisy[n], e)
      threshold = -np.sort(-others)[k - 1]  # Expert e is in the top k iff it beats this.
      expected = 0.5 * math.erfc(-(clean[n, e] - threshold) / stddev[n, e] / math.sqrt(2))
      assert prob[n, e] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("dispatch", MODES)
def test_balancing_loss_positive_when_unbalanced_and_differentiable(dispatch):
  moe = _moe(gate_scale=0.0, dispatch=dispatch)  # All logits equal: all go to experts 0 and 1.
  routing = moe.gating(tf.reshape(_x(), [-1, D]))
  assert np.count_nonzero(routing.load) == 2
  expected = 1e-2 * (cv_squared(routing.importance) + cv_squared(routing.load))
  assert float(routing.loss) == pytest.approx(float(expected)) and float(routing.loss) > 1e-3
  assert float(cv_squared(tf.ones([E]))) == 0.0
  x = _x()
  with tf.GradientTape() as tape:
    y = moe(x, training=True)
    loss = tf.reduce_sum(tf.square(y)) + tf.add_n(moe.losses)
  grads = tape.gradient(loss, moe.trainable_weights)
  assert all(g is not None for g in grads)
  names = [w.name for w in moe.trainable_weights]
  for name, grad in zip(names, grads):
    assert np.any(grad.numpy() != 0), name
  # The balancing loss alone reaches both gate matrices (the noise through the smooth load).
  with tf.GradientTape() as tape:
    moe(x, training=True)
    aux = tf.add_n(moe.losses)
  for grad in tape.gradient(aux, [moe.gate_kernel, moe.noise_kernel]):
    assert grad is not None and np.any(grad.numpy() != 0)


class ParentModel(keras.Model):

  def __init__(self):
    super().__init__()
    self.proj = keras.layers.Dense(D)
    self.moe = MixtureOfExperts(num_experts=E, k=2, filter_size=F)

  def call(self, x, training=False):
    return self.moe(self.proj(x), training=training)


def test_loss_lands_in_the_parent_model_losses_eager_and_in_tf_function():
  model, x = ParentModel(), _x()
  model(x, training=True)
  model(x, training=True)  # A second call replaces the loss, it does not accumulate.
  assert len(model.losses) == 1 and float(model.losses[0]) > 0

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      y = model(x, training=True)
      aux = tf.add_n(model.losses)
      loss = tf.reduce_mean(tf.square(y)) + aux
    return aux, len(model.losses), tape.gradient(loss, model.trainable_weights)

  aux, count, grads = step(x)
  assert count == 1 and float(aux) > 0 and all(g is not None for g in grads)


@pytest.mark.parametrize("dispatch", MODES)
def test_mixed_precision_keeps_gates_in_float32(dispatch):
  moe = MixtureOfExperts(num_experts=4, k=2, filter_size=16, dtype="mixed_float16",
                         dispatch=dispatch)
  y = moe(_x(), training=True)
  assert y.dtype == tf.float16 and y.shape == (3, 7, D)
  assert moe.gate_kernel.dtype == "float32" and moe.kernel_1.dtype == "float32"
  assert moe.losses[0].dtype == tf.float32


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_experts=1, k=2), "Expected `num_experts` >= k. Received: num_experts=1, k=2"),
    (dict(num_experts=4, k=0), "Expected `k` >= 1. Received: k=0"),
    (dict(num_experts=4, k=2, filter_size=0),
     "Expected `filter_size` >= 1. Received: filter_size=0"),
    (dict(num_experts=4, k=2, noise_eps=-1.0),
     "Expected `noise_eps` >= 0. Received: noise_eps=-1.0"),
    (dict(num_experts=4, k=2, loss_coef=-0.5),
     "Expected `loss_coef` >= 0. Received: loss_coef=-0.5"),
    (dict(num_experts=4, k=2, dispatch="dense"),
     "Expected `dispatch` in ('auto', 'loop', 'padded', 'capacity'). Received: dispatch='dense'"),
    (dict(num_experts=4, k=2, capacity_factor=0.0),
     "Expected `capacity_factor` > 0. Received: capacity_factor=0.0"),
])
def test_bad_arguments_name_the_value(kwargs, message):
  kwargs.setdefault("filter_size", 4)
  with pytest.raises(ValueError, match=re.escape(message)):
    MixtureOfExperts(**kwargs)


def test_auto_dispatch_is_loop_without_a_gpu():
  expected = "padded" if tf.config.list_logical_devices("GPU") else "loop"
  assert MixtureOfExperts(4, 2, 8).dispatch_mode() == expected
  assert MixtureOfExperts(4, 2, 8, dispatch="padded").dispatch_mode() == "padded"
  assert MixtureOfExperts(4, 2, 8, dispatch="capacity").dispatch_mode() == "capacity"


# The capacity-factor dispatch ("capacity"), against routing and queues written here.


def _mask(masked: bool):
  return tf.constant(np.random.default_rng(5).random((3, 7)) < 0.6) if masked else None


def _independent_routing(moe: MixtureOfExperts, x, mask=None):
  """Noise-free top-k routing written here, not the layer's: gates, experts, each [B, T, k]."""
  logits = tf.einsum("btd,de->bte", x, moe.gate_kernel)  # [B, T, E]
  top_values, experts = tf.math.top_k(logits, moe.k)  # [B, T, k]
  gates = tf.nn.softmax(top_values)  # [B, T, k]
  if mask is not None:
    gates *= tf.cast(mask, tf.float32)[..., None]  # [B, T, k]
  return gates, experts


def _expected_keep(experts: np.ndarray, mask, capacity: int, num_experts: int) -> np.ndarray:
  """[B, T, k] bool: the assignments that fit, queued time-major, a token's choices in order."""
  batch, time, k = experts.shape
  mask = np.ones((batch, time), bool) if mask is None else np.asarray(mask)
  used, keep = np.zeros(num_experts, int), np.zeros(experts.shape, bool)
  for t in range(time):
    for b in range(batch):
      for j in range(k):
        expert = experts[b, t, j]
        if mask[b, t] and used[expert] < capacity:
          keep[b, t, j], used[expert] = True, used[expert] + 1
  return keep


def _reference(moe: MixtureOfExperts, x, mask=None, keep=None):
  """Sum over the kept j of gate_j * expert_j(x), every expert run densely: [B, T, D]."""
  gates, experts = _independent_routing(moe, x, mask)  # [B, T, k] each
  if keep is not None:
    gates *= tf.cast(keep, tf.float32)  # [B, T, k]
  h = tf.nn.relu(tf.einsum("btd,edf->btef", x, moe.kernel_1) + moe.bias_1)  # [B, T, E, F]
  out = tf.einsum("btef,efd->bted", h, moe.kernel_2) + moe.bias_2  # [B, T, E, D]
  picked = tf.gather(out, experts, batch_dims=2)  # [B, T, k, D]
  return tf.einsum("btk,btkd->btd", gates, picked)  # [B, T, D]


def _assert_gradients_equal(grads, grads_ref, sources, moe):
  for source, grad, grad_ref in zip(sources, grads, grads_ref):
    if source is moe.noise_kernel:  # Unused without noise (training=False).
      assert grad is None and grad_ref is None
    else:
      np.testing.assert_allclose(grad, grad_ref, atol=1e-5)


@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("k", [1, 2, E])
def test_capacity_without_drops_equals_dropless_and_an_independent_reference(k, masked):
  x, mask = _x(), _mask(masked)
  moe, loop = _moe(k=k, dispatch="capacity", capacity_factor=100.0), _moe(k=k, dispatch="loop")
  for weight, other in zip(moe.weights, loop.weights):
    np.testing.assert_array_equal(weight, other)
  assert moe.capacity(21) == 21  # min(N, ...): no expert can be given more than N.
  probe = tf.constant(np.random.default_rng(2).normal(size=x.shape), tf.float32)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    y, y_loop, reference = moe(x, mask=mask), loop(x, mask=mask), _reference(moe, x, mask)
    loss, loss_ref = tf.reduce_sum(y * probe), tf.reduce_sum(reference * probe)
  np.testing.assert_allclose(y, reference, atol=1e-5)
  np.testing.assert_allclose(y, y_loop, atol=1e-5)
  assert float(moe.last_dropped_fraction) == 0.0 and loop.last_dropped_fraction is None
  sources = [x] + moe.trainable_weights
  _assert_gradients_equal(tape.gradient(loss, sources), tape.gradient(loss_ref, sources),
                          sources, moe)


@pytest.mark.parametrize("masked", [False, True])
def test_capacity_drops_what_an_independent_count_predicts(masked):
  moe, x, mask = _moe(dispatch="capacity", capacity_factor=0.5), _x(), _mask(masked)
  capacity = math.ceil(2 * 21 / E * 0.5)  # N = 21 counts padding tokens too.
  assert moe.capacity(21) == capacity == 5
  _, experts = _independent_routing(moe, x)
  keep = _expected_keep(experts.numpy(), mask, capacity, E)  # [B, T, k]
  assignments = 2 * (21 if mask is None else int(np.sum(mask)))
  dropped = assignments - int(keep.sum())
  assert dropped > 0
  y = moe(x, mask=mask)
  assert round(float(moe.last_dropped_fraction) * assignments) == dropped
  np.testing.assert_allclose(y, _reference(moe, x, mask, keep), atol=1e-5)
  none_kept = ~keep.any(axis=-1)  # [B, T] every choice dropped (or padding): exactly 0.
  some_kept = keep.any(axis=-1) & ~keep.all(axis=-1)  # [B, T] the kept expert alone.
  assert none_kept.any() and some_kept.any()
  assert np.all(y.numpy()[none_kept] == 0.0)


def test_capacity_queue_is_time_major_so_later_positions_never_push_out_earlier_ones():
  moe, x = _moe(dispatch="capacity", capacity_factor=0.5), _x()
  changed = tf.concat([x[:, :3], _x(seed=9)[:, 3:]], axis=1)  # Positions 3.. differ.
  y, y_changed = moe(x), moe(changed)
  np.testing.assert_array_equal(y[:, :3], y_changed[:, :3])
  assert float(moe.last_dropped_fraction) > 0


def test_capacity_gradients_match_the_reference_and_reach_every_weight():
  moe, x = _moe(dispatch="capacity", capacity_factor=0.5), _x()
  keep = _expected_keep(_independent_routing(moe, x)[1].numpy(), None, 5, E)
  probe = tf.constant(np.random.default_rng(2).normal(size=x.shape), tf.float32)
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(x)
    y, reference = moe(x), _reference(moe, x, keep=keep)
    loss, loss_ref = tf.reduce_sum(y * probe), tf.reduce_sum(reference * probe)
  sources = [x] + moe.trainable_weights
  _assert_gradients_equal(tape.gradient(loss, sources), tape.gradient(loss_ref, sources),
                          sources, moe)
  # Training (noisy gating, balancing loss): finite, nonzero gradients for every weight.
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.square(moe(x, training=True))) + tf.add_n(moe.losses)
  assert 0.0 < float(moe.last_dropped_fraction) < 1.0
  for weight, grad in zip(moe.trainable_weights, tape.gradient(loss, moe.trainable_weights)):
    assert grad is not None and np.all(np.isfinite(grad)) and np.any(grad.numpy() != 0), weight.name


@pytest.mark.parametrize("masked", [False, True])
def test_capacity_compiles_with_xla_and_matches_without(masked):
  moe, x, mask = _moe(dispatch="capacity", capacity_factor=0.5), _x(), _mask(masked)
  probe = tf.constant(np.random.default_rng(2).normal(size=x.shape), tf.float32)

  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = moe(x, mask=mask)
      loss = tf.reduce_sum(y * probe)
    return y, moe.last_dropped_fraction, tape.gradient(loss, [x] + moe.trainable_weights)

  compiled = tf.function(step, jit_compile=True)
  assert "HloModule" in compiled.experimental_get_compiler_ir(x)(stage="hlo")  # All of it in XLA.
  (y_jit, dropped_jit, grads_jit), (y, dropped, grads) = compiled(x), step(x)
  np.testing.assert_allclose(y_jit, y, atol=1e-5)
  assert float(dropped_jit) == float(dropped) > 0
  for grad_jit, grad in zip(grads_jit, grads):
    if grad is None:
      assert grad_jit is None
    else:
      np.testing.assert_allclose(grad_jit, grad, atol=1e-5)
  train = tf.function(lambda x: moe(x, mask=mask, training=True), jit_compile=True)
  assert np.all(np.isfinite(train(x)))  # Noisy gating and the smooth load compile too.


def test_moe_dispatch_hparams_default_to_dropless_and_load_from_older_runs():
  assert MOE_DISPATCH_MODES == DISPATCH_MODES
  older = json.loads(HParams().to_json())
  del older["moe_dispatch"], older["moe_capacity_factor"]  # An hparams.json from before them.
  hp = HParams.from_dict(older)
  assert (hp.moe_dispatch, hp.moe_capacity_factor) == ("auto", 1.25)
  for mode in DISPATCH_MODES:
    dataclasses.replace(hp, moe_dispatch=mode).validate()
  with pytest.raises(HParamsError, match=re.escape(
      "Expected `moe_dispatch` in ('auto', 'loop', 'padded', 'capacity'). "
      "Received: moe_dispatch='dense'")):
    get_hparams("multimodel_tiny", "moe_dispatch=dense")
  with pytest.raises(HParamsError, match=re.escape(
      "Expected `moe_capacity_factor` > 0. Received: moe_capacity_factor=0.0")):
    get_hparams("multimodel_tiny", "moe_capacity_factor=0.0")


def test_capacity_hparams_reach_the_model_which_trains_a_step():
  signatures = [PROBLEMS.get("translate_ende_bible").signature()]
  features = {"inputs": tf.constant([[5, 6, 7, 8, 9, 1, 0, 0], [10, 11, 1, 0, 0, 0, 0, 0]]),
              "targets": tf.constant([[11, 12, 13, 14, 1, 0], [15, 16, 1, 0, 0, 0]])}
  models = {}
  for mode in ("auto", "capacity"):
    hp = get_hparams("multimodel_tiny", f"moe_dispatch={mode},moe_capacity_factor=1.0")
    models[mode] = MultiModel(hp, signatures)
    models[mode](features, problem="translate_ende_bible")
  model = models["capacity"]
  layers = [model.encoder.moe, model.target_side.moe]
  assert [(moe.dispatch, moe.capacity_factor) for moe in layers] == [("capacity", 1.0)] * 2
  assert models["auto"].encoder.moe.dispatch == "auto"
  variables = {mode: [(w.path.split("/", 1)[1], w.shape) for w in m.weights]
               for mode, m in models.items()}
  assert variables["auto"] == variables["capacity"]  # The mode changes no variable.
  optimizer = keras.optimizers.Adam(1e-2)

  @tf.function
  def train_step():
    with tf.GradientTape() as tape:
      logits = model(features, problem="translate_ende_bible", training=True)
      loss = model.problem_loss("translate_ende_bible", features, logits)[0]
      loss += tf.add_n(model.losses)
    pairs = [(g, v) for g, v in zip(tape.gradient(loss, model.trainable_variables),
                                    model.trainable_variables) if g is not None]
    optimizer.apply_gradients(pairs)
    return loss, [moe.last_dropped_fraction for moe in layers]

  before = [moe.kernel_1.numpy() for moe in layers]
  loss, dropped = train_step()
  assert np.isfinite(float(loss)) and all(0.0 <= float(d) < 1.0 for d in dropped)
  assert all(np.any(moe.kernel_1.numpy() != b) for moe, b in zip(layers, before))
