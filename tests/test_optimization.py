"""OwnStepAdam (bias correction by each variable's own updates) and FusedAdam (one kernel per
variable): both against keras.optimizers.Adam."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.hparams.multimodel import multimodel_tiny
from t2t_multimodel.train import optimization

GRADIENT = np.array([0.1, -0.2], np.float32)


def _adam(cls, **kwargs):
  return cls(learning_rate=1e-2, beta_1=0.9, beta_2=0.997, epsilon=1e-9, **kwargs)


def test_a_variable_updated_on_every_step_moves_as_under_keras_adam():
  ours, theirs = keras.Variable([1.0, 2.0]), keras.Variable([1.0, 2.0])
  own, keras_adam = _adam(optimization.OwnStepAdam), _adam(keras.optimizers.Adam)
  for step in range(1, 8):
    own.apply([GRADIENT * step], [ours])
    keras_adam.apply([GRADIENT * step], [theirs])
  np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6)


def test_a_variable_updated_on_some_steps_moves_as_under_a_fresh_adam_of_its_own():
  body, head, alone = keras.Variable([1.0, 2.0]), keras.Variable([3.0]), keras.Variable([3.0])
  joint, fresh = _adam(optimization.OwnStepAdam), _adam(keras.optimizers.Adam)
  joint.build([body, head])   # as the trainer does: on every trainable variable
  step_fn = tf.function(lambda g: joint.apply([g], [body]))   # the traced path too
  for step in range(1, 10):
    if step % 3 == 0:   # the head's problem came up
      joint.apply([GRADIENT * step, tf.constant([0.5 * step])], [body, head])
      fresh.apply([tf.constant([0.5 * step])], [alone])
    else:
      step_fn(tf.constant(GRADIENT * step))
  np.testing.assert_allclose(head.numpy(), alone.numpy(), rtol=1e-6)
  assert int(joint.iterations.numpy()) == 9
  assert [float(s.numpy()) for s in joint._own_steps] == [9.0, 3.0]


def test_a_late_variables_first_update_is_the_learning_rate_not_a_multiple_of_it():
  """Why it exists: Keras's Adam, 1,000 steps in, moves a newly used variable ~1.8x lr."""
  def first_update(cls):
    body, head = keras.Variable([0.0]), keras.Variable([0.0])
    adam = cls(learning_rate=1e-3, beta_2=0.997, epsilon=1e-9)
    adam.build([body, head])
    adam.iterations.assign(1000)
    adam.apply([tf.constant([1.0]), tf.constant([1.0])], [body, head])
    return -float(head.numpy()[0]) / 1e-3
  assert first_update(optimization.OwnStepAdam) == pytest.approx(1.0, rel=1e-4)
  assert first_update(keras.optimizers.Adam) == pytest.approx(
      0.1 * np.sqrt(1 - 0.997 ** 1001) / np.sqrt(1 - 0.997), rel=1e-4)   # 1.78


def test_the_counts_are_saved_and_restored_with_the_moments(tmp_path):
  head = keras.Variable([3.0])
  adam = _adam(optimization.OwnStepAdam)
  for _ in range(4):
    adam.apply([tf.constant([1.0])], [head])
  path = tf.train.Checkpoint(optimizer=adam).save(str(tmp_path / "ckpt"))
  restored = _adam(optimization.OwnStepAdam)
  restored.build([keras.Variable([0.0])])
  tf.train.Checkpoint(optimizer=restored).restore(path).assert_existing_objects_matched()
  assert float(restored._own_steps[0].numpy()) == 4.0


def _traced_apply(optimizer, variables):
  @tf.function
  def apply(grads):
    optimizer.apply(grads, variables)
  return apply


def _fused_and_keras_adam_runs(steps: int = 6):
  """The same schedule, gradients and starting values under FusedAdam and Keras's Adam."""
  rng = np.random.default_rng(0)
  starts = [rng.normal(size=shape).astype(np.float32) for shape in [(3, 4), (5,), ()]]
  gradients = [[tf.constant(rng.normal(size=np.shape(s)).astype(np.float32) * (step + 1))
                for s in starts] for step in range(steps)]
  results = {}
  for cls in (optimization.FusedAdam, keras.optimizers.Adam):
    variables = [keras.Variable(start) for start in starts]
    adam = cls(learning_rate=optimization.WarmupRsqrtSchedule(1e-2, 3), beta_2=0.997, epsilon=1e-9)
    apply = _traced_apply(adam, variables)
    for grads in gradients:
      apply(grads)
    results[cls] = ([v.numpy() for v in variables],
                    [m.numpy() for m in adam._momentums + adam._velocities], int(adam.iterations))
  return results[optimization.FusedAdam], results[keras.optimizers.Adam]


def test_fused_adam_moves_variables_and_moments_as_keras_adam():
  """Traced, as the trainer runs it (under two mirrored replicas, tests/test_distribute.py pins
  that they train in step with one device)."""
  (ours, our_slots, our_steps), (theirs, their_slots, their_steps) = _fused_and_keras_adam_runs()
  for a, b in zip(ours + our_slots, theirs + their_slots):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
  assert our_steps == their_steps == 6


def test_fused_adam_restores_keras_adams_checkpoint(tmp_path):
  """Same slots: a run saved under Keras's Adam resumes under FusedAdam."""
  variable = keras.Variable([3.0, 1.0])
  adam = _adam(keras.optimizers.Adam)
  for _ in range(3):
    adam.apply([tf.constant(GRADIENT)], [variable])
  path = tf.train.Checkpoint(optimizer=adam).save(str(tmp_path / "ckpt"))
  fused = _adam(optimization.FusedAdam)
  fused.build([keras.Variable([0.0, 0.0])])
  tf.train.Checkpoint(optimizer=fused).restore(path).assert_existing_objects_matched()
  np.testing.assert_allclose(fused._momentums[0].numpy(), adam._momentums[0].numpy())
  assert int(fused.iterations) == 3


def test_fused_adam_refuses_amsgrad():
  with pytest.raises(ValueError, match="amsgrad"):
    optimization.FusedAdam(amsgrad=True)


@pytest.mark.parametrize("own_steps, expected", [(False, optimization.FusedAdam),
                                                 (True, optimization.OwnStepAdam)])
def test_the_hparam_chooses_the_adam(own_steps, expected):
  hp = dataclasses.replace(multimodel_tiny(), adam_own_steps=own_steps)
  assert type(optimization.make_optimizer(hp)) is expected
  mixed = optimization.make_optimizer(dataclasses.replace(hp, mixed_precision=True))
  assert type(mixed.inner_optimizer) is expected
