"""The optimiser of a run: Adam on T2T's warmup-then-rsqrt schedule, and mixed precision.

`make_optimizer(hp)` is Adam with `WarmupRsqrtSchedule` (its peak is the `learning_rate` hparam);
with `hp.mixed_precision` it is wrapped in Keras's LossScaleOptimizer (dynamic loss scaling: the
loss is scaled before the gradients, which the optimiser unscales; a step with non-finite
gradients is skipped and the scale halved), and `dtype_policy(hp)` builds layers that compute in
float16 with float32 variables. The logits, the softmax, the losses and the MoE gates stay in
float32 (their layers say so).
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="t2t_multimodel")
class WarmupRsqrtSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warmup to a peak, then rsqrt decay; the peak is the `learning_rate` hparam itself.

  lr(step) = learning_rate * min(step / warmup_steps, sqrt(warmup_steps / step)),
  with step counted from 1 (the optimizer's `iterations` + 1): exactly `learning_rate` at
  step == warmup_steps. T2T's noam schedule has the same shape, with its peak hidden in
  learning_rate * 5000 * 0.002 * hidden_size**-0.5 * warmup_steps**-0.5.

  Args:
    learning_rate: the peak learning rate.
    warmup_steps: steps of linear warmup.

  Example:
    >>> schedule = WarmupRsqrtSchedule(1.8e-3, warmup_steps=200)
    >>> float(schedule(199))   # step 200: the peak, 1.8e-3
    >>> float(schedule(799))   # step 800: 4x the steps, half the peak
  """

  def __init__(self, learning_rate: float, warmup_steps: int):
    if warmup_steps < 1:
      raise ValueError(f"Expected `warmup_steps` >= 1. Received: warmup_steps={warmup_steps}")
    if learning_rate <= 0:
      raise ValueError(f"Expected `learning_rate` > 0. Received: learning_rate={learning_rate}")
    self.learning_rate, self.warmup_steps = learning_rate, warmup_steps

  def __call__(self, step):
    step = tf.cast(step, tf.float32) + 1.0
    warmup = float(self.warmup_steps)
    return self.learning_rate * tf.minimum(step / warmup, tf.math.sqrt(warmup / step))

  def get_config(self):
    return {"learning_rate": self.learning_rate, "warmup_steps": self.warmup_steps}


def make_schedule(hp) -> WarmupRsqrtSchedule:
  """The schedule of `hp`: peak `learning_rate` at step `learning_rate_warmup_steps`."""
  return WarmupRsqrtSchedule(hp.learning_rate, hp.learning_rate_warmup_steps)


def make_optimizer(hp, schedule: keras.optimizers.schedules.LearningRateSchedule | None = None
                   ) -> keras.optimizers.Optimizer:
  """Adam with the warmup + rsqrt schedule (loss-scaled under `hp.mixed_precision`); the train
  step clips the summed gradient (`loss_scale` says by how much it is scaled)."""
  schedule = schedule or make_schedule(hp)
  adam = keras.optimizers.Adam(learning_rate=schedule, beta_1=hp.adam_beta1, beta_2=hp.adam_beta2,
                               epsilon=hp.adam_epsilon)
  return keras.optimizers.LossScaleOptimizer(adam) if hp.mixed_precision else adam


def loss_scale(optimizer: keras.optimizers.Optimizer):
  """The factor the optimizer's `scale_loss` multiplies the loss by: 1 without loss scaling."""
  return optimizer.dynamic_scale if isinstance(optimizer, keras.optimizers.LossScaleOptimizer) else 1.0


@contextlib.contextmanager
def dtype_policy(hp):
  """Layers created inside compute in float16 and keep float32 variables under
  `hp.mixed_precision` ("mixed_float16"); the global policy is restored on exit."""
  if not hp.mixed_precision:
    yield
    return
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy("mixed_float16")
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)
