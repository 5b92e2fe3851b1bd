"""The MoE's capacity-factor dispatch ("capacity"), against routing and queues written here (not
the layer's own gating code), and its hparams through the model."""

from __future__ import annotations

import dataclasses
import json
import math
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.hparams import get_hparams, HParams, HParamsError
from t2t_multimodel.hparams.base import MOE_DISPATCH_MODES
from t2t_multimodel.layers.moe import DISPATCH_MODES, MixtureOfExperts
from t2t_multimodel.model.multimodel import MultiModel
from t2t_multimodel.problems import PROBLEMS
from tests.test_moe import E, _moe, _x


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
