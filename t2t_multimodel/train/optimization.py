"""The optimiser of a run: Adam on T2T's warmup-then-rsqrt schedule, and mixed precision.

`make_optimizer(hp)` is Adam with `WarmupRsqrtSchedule` (its peak is the `learning_rate` hparam):
`FusedAdam` (Keras's Adam applied by one fused kernel per variable), or `OwnStepAdam` under
`hp.adam_own_steps` (bias correction by each variable's own update count);
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


@keras.saving.register_keras_serializable(package="t2t_multimodel")
class OwnStepAdam(keras.optimizers.Adam):
  """Adam whose bias correction counts each variable's own updates, not the global step.

  The trainer applies one problem's gradient per step, so a variable only that problem uses (its
  modality's top or bottom) is updated on a fraction of the steps. Keras's Adam corrects m and v
  by the optimizer's `iterations`; after such a variable's n-th update (n << iterations) its step
  is lr * (1 - b1**n) / sqrt(1 - b2**n) for a steady gradient: 1.8x lr at n=1, 3.8x at n=10 with
  b2=0.997. Here each variable is corrected as if it had its own Adam: a variable updated on
  every step moves exactly as under keras.optimizers.Adam, and one updated on every k-th step as
  under a fresh Adam that saw only those updates (tests/test_optimization.py).

  The counts are optimizer variables (float32 scalars, one per trainable variable, colocated with
  it), saved in checkpoints with the moments.

  Example:
    >>> optimizer = OwnStepAdam(learning_rate=1e-3, beta_2=0.997, epsilon=1e-9)
  """

  def build(self, var_list):
    if self.built:
      return
    super().build(var_list)
    self._own_steps = []
    for variable in var_list:
      colocate = variable.value if isinstance(variable, keras.Variable) else variable
      with self._distribution_strategy.extended.colocate_vars_with(colocate):
        self._own_steps.append(self.add_variable((), initializer="zeros", dtype="float32",
                                                 name=f"{variable.name}_own_step"))

  def update_step(self, gradient, variable, learning_rate):
    index = self._get_variable_index(variable)
    own_step = self._own_steps[index] + 1.0
    self.assign(self._own_steps[index], own_step)
    lr = keras.ops.cast(learning_rate, variable.dtype)
    gradient = keras.ops.cast(gradient, variable.dtype)
    step = keras.ops.cast(own_step, variable.dtype)
    beta_1 = keras.ops.cast(self.beta_1, variable.dtype)
    beta_2 = keras.ops.cast(self.beta_2, variable.dtype)
    alpha = lr * keras.ops.sqrt(1 - beta_2 ** step) / (1 - beta_1 ** step)
    m, v = self._momentums[index], self._velocities[index]
    self.assign_add(m, (gradient - m) * (1 - self.beta_1))
    self.assign_add(v, (keras.ops.square(gradient) - v) * (1 - self.beta_2))
    self.assign_sub(variable, m * alpha / (keras.ops.sqrt(v) + self.epsilon))


@keras.saving.register_keras_serializable(package="t2t_multimodel")
class FusedAdam(keras.optimizers.Adam):
  """Keras's Adam, applied by one fused kernel per variable (TensorFlow's ResourceApplyAdam).

  Keras's Adam builds ~25 small ops per variable and step (the bias correction's powers and
  square roots again for every variable, then the moments and the update one op at a time). On a
  CPU a step of a small model is bound by how many ops it runs, and the ~180 variables a
  multimodel_small step updates made the optimiser half of the step's ops
  (benchmarks/RESULTS.md). Here the bias-corrected step size is computed once per step and each
  variable is updated by one kernel with the same arithmetic:

    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m += (g - m) * (1 - beta_1);  v += (g**2 - v) * (1 - beta_2)
    variable -= alpha * m / (sqrt(v) + epsilon)

  Its slots, checkpoints and config are Adam's (tests/test_optimization.py pins the updates to
  keras.optimizers.Adam's); `amsgrad` is not supported.

  Example:
    >>> optimizer = FusedAdam(learning_rate=1e-3, beta_2=0.997, epsilon=1e-9)
  """

  def __init__(self, *args, **kwargs):
    super().__init__(*args, **kwargs)
    if self.amsgrad:
      raise ValueError("FusedAdam does not support `amsgrad`; use keras.optimizers.Adam.")

  def _backend_update_step(self, grads, trainable_variables, learning_rate):
    step = tf.cast(self.iterations + 1, tf.float32)
    alpha = (tf.cast(learning_rate, tf.float32) * tf.sqrt(1.0 - tf.pow(self.beta_2, step))
             / (1.0 - tf.pow(self.beta_1, step)))                        # once per step, not per variable
    super()._backend_update_step(grads, trainable_variables, alpha)

  def update_step(self, gradient, variable, learning_rate):
    """`learning_rate` is the step's bias-corrected alpha (`_backend_update_step`)."""
    index = self._get_variable_index(variable)
    dtype = variable.dtype
    zero = tf.constant(0.0, dtype)  # beta powers of 0: the kernel's own correction is 1
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=self._momentums[index].handle, v=self._velocities[index].handle,
        beta1_power=zero, beta2_power=zero, lr=tf.cast(learning_rate, dtype),
        beta1=tf.constant(self.beta_1, dtype), beta2=tf.constant(self.beta_2, dtype),
        epsilon=tf.constant(self.epsilon, dtype), grad=tf.cast(gradient, dtype))


def make_schedule(hp) -> WarmupRsqrtSchedule:
  """The schedule of `hp`: peak `learning_rate` at step `learning_rate_warmup_steps`."""
  return WarmupRsqrtSchedule(hp.learning_rate, hp.learning_rate_warmup_steps)


def make_optimizer(hp, schedule: keras.optimizers.schedules.LearningRateSchedule | None = None
                   ) -> keras.optimizers.Optimizer:
  """Adam (`OwnStepAdam` under `hp.adam_own_steps`) with the warmup + rsqrt schedule, loss-scaled
  under `hp.mixed_precision`; the train step clips the summed gradient (`loss_scale` says by how
  much it is scaled)."""
  schedule = schedule or make_schedule(hp)
  adam_class = OwnStepAdam if hp.adam_own_steps else FusedAdam
  adam = adam_class(learning_rate=schedule, beta_1=hp.adam_beta1, beta_2=hp.adam_beta2,
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
