"""Sparsely-gated mixture of experts (Shazeer et al. 2017, "Outrageously Large Neural Networks").

Each token is routed by a noisy top-k gate to k of E feed-forward experts; its output is the
gate-weighted sum of those k experts' outputs. The dispatch is sparse and dropless:

  1. The A = N*k (token, expert) assignments are sorted by expert (an argsort of A ints); padding
     tokens get a sentinel expert E that sorts last and is never run.
  2. The token rows are gathered in that order and each expert runs on its contiguous group:
     "loop": a tf.while_loop over the experts on the unpadded groups (plain matmuls, a
       hand-written backward loop that writes each expert's weight gradients once); or
     "padded": every group padded to the largest one, C rows (a multiple of 8; ~A/E when the
       load is balanced), and one batched matmul on [E, C, D] per layer.
  3. Each assignment gathers its output row back through the inverse permutation ([N, k, D]) and
     the k rows are summed, weighted by the gates. The gradients of both gathers are gathers
     too (no scatter-add).

"capacity" (GShard, Switch Transformer) is not dropless: each expert has a fixed buffer of
C = min(N, ceil(k * N / E * capacity_factor)) rows, N counting every token (padding too, so C is
static when N is). Assignments queue for their expert in token order, time-major (all rows'
position 0, then position 1, ...: a later position never pushes out an earlier one, so a causal
decoder stays causal), a token's k choices in gate order; those past C are dropped: their gate
counts as 0 (the gates are not renormalised; the residual around the layer carries the token).
The same sort and gathers as "padded" fill [E, C, D], one batched matmul per layer runs it, and
a zero row serves dropped and padding assignments. Every shape is static when N is, so it
compiles with XLA (`jit_compile=True`). The share of non-padding assignments dropped by the
last call is `MixtureOfExperts.last_dropped_fraction`. Drops depend on the other tokens of the
call, in training and inference alike: a one-position decoding step (N = B) drops other
assignments than the full sequence does, so cached decoding can differ from a full pass.

Experts cost O(A * D * F) when dropless, O(E * C * D * F) with a capacity; the gating network
itself is O(N * D * E), as in the paper. The balancing loss is added with `add_loss`: after a
forward pass it is in the parent model's `.losses` (inside a tf.function, read it in the same
function as the forward pass; the same holds for `last_dropped_fraction`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import keras
import tensorflow as tf

from t2t_multimodel.layers import expert_ffn

_CAPACITY_MULTIPLE = 8  # "padded": each expert's group is padded to a multiple of this many rows.
DISPATCH_MODES = ("auto", "loop", "padded", "capacity")


class Gating(NamedTuple):
  """The routing of N flat tokens: what `MixtureOfExperts.gating` returns.

  gates:      [N, k] float32 softmax weights over each token's top-k experts (0 for padding).
  experts:    [N, k] int32 expert ids, in decreasing order of gate logit.
  importance: [E] float32 sum of the gates per expert over non-padding tokens.
  load:       [E] float32 smooth estimate (training with noise) or count of tokens per expert.
  loss:       [] float32 loss_coef * (cv^2(importance) + cv^2(load)).
  """
  gates: tf.Tensor
  experts: tf.Tensor
  importance: tf.Tensor
  load: tf.Tensor
  loss: tf.Tensor


def cv_squared(x: tf.Tensor) -> tf.Tensor:
  """Squared coefficient of variation (variance / mean^2) of a 1-D tensor; 0 when it is constant."""
  eps = 1e-10
  size = tf.cast(tf.size(x), tf.float32) + eps
  mean = tf.reduce_sum(x) / size
  variance = tf.reduce_sum(tf.square(x - mean)) / size
  return variance / (tf.square(mean) + eps)


def _prob_in_top_k(clean, noisy, stddev, top_values, k: int):
  """P(expert in the top k under a fresh draw of its own noise), the paper's smooth load.

  Args:
    clean: [N, E] logits without noise.  noisy: [N, E] logits with noise.
    stddev: [N, E] noise standard deviation.  top_values: [N, k + 1] largest noisy logits.
  """
  threshold_if_in = top_values[:, k:k + 1]  # [N, 1] the (k+1)-th largest: beat it to stay in.
  threshold_if_out = top_values[:, k - 1:k]  # [N, 1] the k-th largest: beat it to get in.
  z_in = (clean - threshold_if_in) / stddev  # [N, E]
  z_out = (clean - threshold_if_out) / stddev  # [N, E]
  z = tf.where(noisy > threshold_if_in, z_in, z_out)  # [N, E]
  return 0.5 * tf.math.erfc(-z / math.sqrt(2.0))  # [N, E] the normal CDF.


@keras.saving.register_keras_serializable(package="t2t_multimodel")
class MixtureOfExperts(keras.layers.Layer):
  """Sparsely-gated mixture of ReLU feed-forward experts with noisy top-k gating.

  y = sum over the k experts i chosen for x of G(x)_i * E_i(x), where
  E_i(x) = ReLU(x W1_i + b1_i) W2_i + b2_i (widths D -> filter_size -> D) and G is the softmax
  over the top-k of x W_g + noise, noise ~ N(0, softplus(x W_noise) + noise_eps) in training
  only. W_g and W_noise start at zero and stay float32 under mixed precision. The balancing loss
  loss_coef * (cv^2(importance) + cv^2(load)) is added with `add_loss` at every call.

  Args:
    num_experts: number of experts E (>= k).
    k: experts per token (>= 1).
    filter_size: hidden width F of each expert.
    noise_eps: added to the softplus noise standard deviation (>= 0).
    loss_coef: weight of the balancing loss (>= 0).
    seed: optional int seed of the gating noise and of the expert initialisation.
    dispatch: how the experts run on their groups. Dropless, with the same results: "loop"
      (unpadded groups, a graph loop over experts: fastest on CPU), "padded" (one batched matmul
      on groups padded to the largest: for accelerators), or "auto" ("padded" if a GPU is
      visible, else "loop"). Or "capacity": fixed buffers of `capacity(N)` rows per expert,
      assignments past them dropped (see the module docstring); static shapes, compiles with XLA.
    capacity_factor: "capacity" only: buffer rows per expert over the balanced share k * N / E
      (> 0; 1.25 as in GShard / Switch Transformer).
    **kwargs: base Layer arguments (name, dtype, ...).

  Call args:
    x: [B, T, D] float.
    mask: optional [B, T] bool or float; False / 0 marks padding: not dispatched, excluded from
      importance and load, output 0.
    training: Python bool; adds gating noise and uses the smooth load estimator.

  Attributes:
    last_dropped_fraction: "capacity" only: [] float32, the share of the last call's non-padding
      assignments dropped for lack of room (0 when there are none); None in the dropless modes.

  Example:
    >>> moe = MixtureOfExperts(num_experts=4, k=2, filter_size=32)
    >>> moe(tf.ones([2, 5, 8])).shape
    TensorShape([2, 5, 8])
  """

  def __init__(self, num_experts: int, k: int, filter_size: int, noise_eps: float = 1e-2,
               loss_coef: float = 1e-2, seed: int | None = None, dispatch: str = "auto",
               capacity_factor: float = 1.25, **kwargs):
    super().__init__(**kwargs)
    checks = [(k >= 1, f"`k` >= 1. Received: k={k}"),
              (num_experts >= k, f"`num_experts` >= k. Received: num_experts={num_experts}, k={k}"),
              (filter_size >= 1, f"`filter_size` >= 1. Received: filter_size={filter_size}"),
              (noise_eps >= 0, f"`noise_eps` >= 0. Received: noise_eps={noise_eps}"),
              (loss_coef >= 0, f"`loss_coef` >= 0. Received: loss_coef={loss_coef}"),
              (dispatch in DISPATCH_MODES, f"`dispatch` in {DISPATCH_MODES}. Received: "
                                           f"dispatch={dispatch!r}"),
              (capacity_factor > 0, f"`capacity_factor` > 0. Received: "
                                    f"capacity_factor={capacity_factor}")]
    for ok, message in checks:
      if not ok:
        raise ValueError(f"Expected {message}")
    self.num_experts, self.k, self.filter_size = int(num_experts), int(k), int(filter_size)
    self.noise_eps, self.loss_coef = float(noise_eps), float(loss_coef)
    self.seed, self.dispatch, self.capacity_factor = seed, dispatch, float(capacity_factor)
    self.last_dropped_fraction = None
    self.seed_generator = keras.random.SeedGenerator(seed)
    self.supports_masking = True

  def build(self, input_shape):
    d, e, f = input_shape[-1], self.num_experts, self.filter_size
    if d is None:
      raise ValueError(
          f"Expected a known last input dimension. Received: input_shape={input_shape}")
    zeros = keras.initializers.Zeros()
    self.gate_kernel = self.add_weight(shape=(d, e), initializer=zeros, autocast=False,
                                       name="gate_kernel")  # [D, E]
    self.noise_kernel = self.add_weight(shape=(d, e), initializer=zeros, autocast=False,
                                        name="noise_kernel")  # [D, E]
    # Glorot-uniform per expert (the fans of one expert's matrix, not of the stacked tensor).
    limit = math.sqrt(6.0 / (d + f))
    uniform = keras.initializers.RandomUniform(-limit, limit, seed=self.seed)
    self.kernel_1 = self.add_weight(shape=(e, d, f), initializer=uniform,
                                    name="kernel_1")  # [E, D, F]
    self.bias_1 = self.add_weight(shape=(e, f), initializer=zeros, name="bias_1")  # [E, F]
    self.kernel_2 = self.add_weight(shape=(e, f, d), initializer=uniform,
                                    name="kernel_2")  # [E, F, D]
    self.bias_2 = self.add_weight(shape=(e, d), initializer=zeros, name="bias_2")  # [E, D]

  def gating(self, x: tf.Tensor, valid: tf.Tensor | None = None, training: bool = False) -> Gating:
    """Noisy top-k gating of flat tokens x [N, D]; valid: optional [N] bool (False = padding)."""
    e, k = self.num_experts, self.k
    x = tf.cast(x, tf.float32)  # [N, D]
    if training:  # One matmul for both gate matrices.
      both = tf.matmul(x, tf.concat([self.gate_kernel, self.noise_kernel], axis=1))  # [N, 2E]
      clean, raw_stddev = both[:, :e], both[:, e:]  # [N, E] each
      stddev = tf.nn.softplus(raw_stddev) + self.noise_eps  # [N, E]
      noise = keras.random.normal(tf.shape(clean), seed=self.seed_generator, dtype="float32")
      logits = clean + noise * stddev  # [N, E]
    else:
      clean = logits = tf.matmul(x, self.gate_kernel)  # [N, E]
    smooth_load = training and k < e
    top_values, top_indices = tf.math.top_k(logits, k + 1 if smooth_load else k)  # [N, k(+1)]
    gates = tf.nn.softmax(top_values[:, :k])  # [N, k]
    experts = top_indices[:, :k]  # [N, k]
    weight = tf.ones_like(gates[:, 0]) if valid is None else tf.cast(valid, tf.float32)  # [N]
    gates *= weight[:, None]  # [N, k]
    flat_experts = tf.reshape(experts, [-1])  # [N*k]
    importance = tf.math.unsorted_segment_sum(tf.reshape(gates, [-1]), flat_experts, e)  # [E]
    if smooth_load:
      prob = _prob_in_top_k(clean, logits, stddev, top_values, k)  # [N, E]
      load = tf.reduce_sum(prob * weight[:, None], axis=0)  # [E]
    else:
      counted = tf.tile(weight[:, None], [1, k])  # [N, k]
      load = tf.math.unsorted_segment_sum(tf.reshape(counted, [-1]), flat_experts, e)  # [E]
    loss = self.loss_coef * (cv_squared(importance) + cv_squared(load))
    return Gating(gates, experts, importance, load, loss)

  def call(self, x, mask=None, training=False):
    time_major = self.dispatch == "capacity" and len(x.shape) == 3  # Queue in time order.
    if time_major:
      x = tf.transpose(x, [1, 0, 2])  # [T, B, D]
      mask = None if mask is None else tf.transpose(mask)  # [T, B]
    shape = tf.shape(x)  # [B, T, D] ([T, B, D] if time_major)
    tokens = tf.reshape(x, [-1, x.shape[-1]])  # [N, D]
    valid = None if mask is None else tf.reshape(tf.cast(mask, tf.bool), [-1])  # [N]
    routing = self.gating(tokens, valid, training=bool(training))
    self.add_loss(routing.loss)
    if self.dispatch == "capacity":
      y, self.last_dropped_fraction = self._capacity_dispatch(
          tokens, routing.gates, routing.experts, valid)  # [N, D], []
    else:
      y = self._dispatch(tokens, routing.gates, routing.experts, valid, bool(training))  # [N, D]
    y = tf.reshape(y, shape)  # [B, T, D] ([T, B, D] if time_major)
    return tf.transpose(y, [1, 0, 2]) if time_major else y  # [B, T, D]

  def capacity(self, num_tokens):
    """Rows per expert of "capacity": min(N, ceil(k * N / E * capacity_factor)), at least 1.

    Args:
      num_tokens: N, all tokens of the call (padding included): an int gives an int (static
        shapes), a scalar int32 tensor a tensor.
    """
    share = self.k / self.num_experts * self.capacity_factor
    if isinstance(num_tokens, int):
      return max(1, min(num_tokens, math.ceil(num_tokens * share)))
    rows = tf.cast(tf.math.ceil(tf.cast(num_tokens, tf.float64) * share), tf.int32)
    return tf.maximum(1, tf.minimum(num_tokens, rows))

  def dispatch_mode(self) -> str:
    """The resolved dispatch: "loop", "padded" or "capacity"."""
    if self.dispatch != "auto":
      return self.dispatch
    return "padded" if tf.config.list_logical_devices("GPU") else "loop"

  def _dispatch(self, tokens, gates, experts, valid, training: bool = True):
    """Runs each token's k experts only, on groups sorted by expert; returns y [N, D]."""
    e, k = self.num_experts, self.k
    flat_experts = tf.reshape(experts, [-1])  # [A], A = N*k; assignment a is token a // k.
    if valid is not None:
      assigned = tf.reshape(tf.tile(valid[:, None], [1, k]), [-1])  # [A]
      flat_experts = tf.where(assigned, flat_experts, e)  # [A] padding -> sentinel expert E.
    order = tf.argsort(flat_experts, stable=True)  # [A] sorted position -> assignment
    position = tf.math.invert_permutation(order)  # [A] assignment -> sorted position
    counts = tf.math.bincount(flat_experts, minlength=e + 1, maxlength=e + 1)  # [E + 1]
    offsets = tf.cumsum(counts, exclusive=True)  # [E + 1] offsets[E] = non-padding assignments
    weights = [tf.convert_to_tensor(w) for w in
               (self.kernel_1, self.bias_1, self.kernel_2, self.bias_2)]
    gates = tf.cast(gates, tokens.dtype)  # [N, k]
    if self.dispatch_mode() == "loop":
      slot = tf.reshape(tf.minimum(position, offsets[e]), [-1, k])  # [N, k] padding: zero row
      slot_assignment = tf.concat([order[:offsets[e]], [-1]], axis=0)  # [R], R = offsets[E] + 1
      rows = expert_ffn.gather_rows(tokens, slot_assignment, slot)  # [R, D]
      rows = expert_ffn.looped_ffn(rows, offsets, *weights, custom_gradient=training)  # [R, D]
      return expert_ffn.combine_rows(rows, gates, slot, slot_assignment)  # [N, D]
    # "padded": row e * C + rank of each assignment; padding assignments read row 0, gate 0.
    capacity = (tf.reduce_max(counts[:e]) + _CAPACITY_MULTIPLE - 1) // _CAPACITY_MULTIPLE
    capacity = tf.maximum(capacity * _CAPACITY_MULTIPLE, _CAPACITY_MULTIPLE)  # C
    expert = tf.minimum(flat_experts, e - 1)  # [A]
    slot = expert * capacity + position - tf.gather(offsets, expert)  # [A]
    slot = tf.reshape(tf.where(flat_experts < e, slot, 0), [-1, k])  # [N, k]
    column = tf.range(capacity)  # [C]
    last = tf.shape(order)[0] - 1
    source = tf.gather(order, tf.minimum(offsets[:e, None] + column, last))  # [E, C]
    in_group = column[None, :] < counts[:e, None]  # [E, C]
    slot_assignment = tf.reshape(tf.where(in_group, source, -1), [-1])  # [S], S = E*C
    token_mask = None if valid is None else tf.cast(valid, tokens.dtype)[:, None]  # [N, 1]
    rows = expert_ffn.gather_rows(tokens, slot_assignment, slot, token_mask)  # [S, D]
    d = tokens.shape[-1]
    rows = expert_ffn.padded_ffn(tf.reshape(rows, [e, capacity, d]), *weights)  # [E, C, D]
    return expert_ffn.combine_rows(tf.reshape(rows, [e * capacity, d]), gates, slot, slot_assignment)

  def _capacity_dispatch(self, tokens, gates, experts, valid):
    """Each expert on its first C assignments in token order, [E, C, D]; returns y [N, D], dropped.

    Buffer row e * C + c holds expert e's c-th assignment; row E * C is a zero row that dropped
    and padding assignments read with gate 0, so no gradient reaches or leaves them there.
    """
    e, k, d = self.num_experts, self.k, tokens.shape[-1]
    n = tokens.shape[0] if tokens.shape[0] is not None else tf.shape(tokens)[0]
    capacity = self.capacity(n)  # C
    flat_experts = tf.reshape(experts, [-1])  # [A], A = N*k; assignment a is token a // k.
    valid_assignments = tf.ones_like(flat_experts, tf.bool)  # [A]
    if valid is not None:
      valid_assignments = tf.reshape(tf.tile(valid[:, None], [1, k]), [-1])  # [A]
      flat_experts = tf.where(valid_assignments, flat_experts, e)  # [A] padding -> sentinel E.
    order = tf.argsort(flat_experts, stable=True)  # [A] sorted position -> assignment
    position = tf.math.invert_permutation(order)  # [A] assignment -> sorted position
    counts = tf.math.unsorted_segment_sum(tf.ones_like(flat_experts), flat_experts, e + 1)
    offsets = tf.cumsum(counts, exclusive=True)  # [E + 1]
    expert = tf.minimum(flat_experts, e - 1)  # [A]
    rank = position - tf.gather(offsets, expert)  # [A] place in its expert's queue
    kept = (flat_experts < e) & (rank < capacity)  # [A]
    slot = tf.reshape(tf.where(kept, expert * capacity + rank, e * capacity), [-1, k])  # [N, k]
    column = tf.range(capacity)  # [C]
    source = tf.gather(order, tf.minimum(offsets[:e, None] + column, tf.size(order) - 1))  # [E, C]
    in_buffer = column[None, :] < counts[:e, None]  # [E, C]
    slot_assignment = tf.concat([tf.reshape(tf.where(in_buffer, source, -1), [-1]), [-1]],
                                axis=0)  # [E*C + 1]
    rows = expert_ffn.gather_rows(tokens, slot_assignment, slot)  # [E*C + 1, D]
    weights = [tf.convert_to_tensor(w) for w in
               (self.kernel_1, self.bias_1, self.kernel_2, self.bias_2)]
    rows = expert_ffn.padded_ffn(tf.reshape(rows[:-1], [e, capacity, d]), *weights)  # [E, C, D]
    rows = tf.concat([tf.reshape(rows, [-1, d]), tf.zeros([1, d], rows.dtype)], 0)  # [E*C + 1, D]
    gates = tf.cast(gates, tokens.dtype) * tf.cast(tf.reshape(kept, [-1, k]), tokens.dtype)
    y = expert_ffn.combine_rows(rows, gates, slot, slot_assignment)  # [N, D]
    total = tf.reduce_sum(tf.cast(valid_assignments, tf.float32))
    dropped = total - tf.reduce_sum(tf.cast(kept, tf.float32))
    return y, dropped / tf.maximum(total, 1.0)

  def compute_output_shape(self, input_shape):
    return input_shape

  def compute_mask(self, inputs, mask=None):
    return mask

  def get_config(self):
    config = super().get_config()
    config.update(num_experts=self.num_experts, k=self.k, filter_size=self.filter_size,
                  noise_eps=self.noise_eps, loss_coef=self.loss_coef, seed=self.seed,
                  dispatch=self.dispatch, capacity_factor=self.capacity_factor)
    return config
