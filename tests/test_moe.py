"""The sparsely-gated mixture of experts: routing, sparse dispatch, capacity, balancing loss."""

from __future__ import annotations

import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.layers.moe import MixtureOfExperts, _prob_in_top_k, cv_squared

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
