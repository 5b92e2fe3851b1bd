"""The expert feed-forward networks of the MoE and the gathers around them (see moe.py).

`gather_rows` lays the routed tokens out in expert order, `padded_ffn` runs every expert on
[E, C, D] as two batched matmuls, `looped_ffn` runs each expert on its unpadded group in one
graph loop (with a hand-written backward loop), and `combine_rows` sums each token's gate-weighted
expert outputs. Both gathers have gathers as gradients (no scatter-add).
"""

from __future__ import annotations

import tensorflow as tf


def gather_rows(tokens, slot_assignment, slot, token_mask=None):
  """rows[s] = tokens[slot_assignment[s] // k] (token 0 where slot_assignment is -1): [S, D].

  Its gradient is a gather too: d_tokens[n] = sum_j d_rows[slot[n, j]]; this needs d_rows = 0
  on the rows no assignment reads, true here because `combine_rows` never reads them.

  Args:
    tokens: [N, D].  slot_assignment: [S] int32 assignment of each row, -1 on padding rows.
    slot: [N, k] int32 row of each assignment.  token_mask: None or [N, 1] 0/1, to zero the
      gradient of padding tokens whose slot points at a real row.
  """
  k = tf.shape(slot)[1]

  @tf.custom_gradient
  def gather(tokens):
    def grad(d_rows):
      d_tokens = tf.reduce_sum(tf.gather(d_rows, slot), axis=1)  # [N, D]
      return d_tokens if token_mask is None else d_tokens * token_mask

    return tf.gather(tokens, tf.maximum(slot_assignment, 0) // k), grad  # [S, D]

  return gather(tokens)


def combine_rows(rows, gates, slot, slot_assignment):
  """y[n] = sum_j gates[n, j] * rows[slot[n, j]], the gate-weighted expert outputs: [N, D].

  Gradients by gathers: d_rows[s] = gate(s) * dy[token(s)] (0 on padding rows) and
  d_gates[n, j] = <dy[n], rows[slot[n, j]]>.

  Args:
    rows: [S, D] expert outputs.  gates: [N, k].  slot: [N, k] int32.
    slot_assignment: [S] int32 assignment of each row, -1 on padding rows.
  """
  k = tf.shape(slot)[1]

  @tf.custom_gradient
  def combine(rows, gates):
    picked = tf.gather(rows, slot)  # [N, k, D]

    def grad(dy):
      index = tf.maximum(slot_assignment, 0)  # [S]
      gate = tf.gather(tf.reshape(gates, [-1]), index)  # [S]
      gate = tf.where(slot_assignment >= 0, gate, tf.zeros_like(gate))  # [S]
      d_rows = tf.gather(dy, index // k) * gate[:, None]  # [S, D]
      return d_rows, tf.reduce_sum(picked * dy[:, None, :], axis=2)  # [S, D], [N, k]

    return tf.reduce_sum(picked * gates[:, :, None], axis=1), grad  # [N, D]

  return combine(rows, gates)


def padded_ffn(rows, w1, b1, w2, b2):
  """All experts on their padded groups rows [E, C, D] as two batched matmuls: [E, C, D]."""
  h = tf.nn.relu(tf.matmul(rows, w1) + b1[:, None, :])  # [E, C, F]
  return tf.matmul(h, w2) + b2[:, None, :]  # [E, C, D]


def _map_experts(fn, num_experts: int, dtype, shapes):
  """fn(i) for every expert i in one tf.while_loop: TensorArrays of size E + 1 (last unwritten)."""

  def body(i, *arrays):
    return [i + 1] + [array.write(i, value) for array, value in zip(arrays, fn(i))]

  arrays = [tf.TensorArray(dtype, size=num_experts + 1, infer_shape=False, element_shape=shape,
                           clear_after_read=False) for shape in shapes]
  return tf.while_loop(lambda i, *_: i < num_experts, body, [0] + arrays,
                       parallel_iterations=2)[1:]


def looped_ffn(rows, offsets, w1, b1, w2, b2, custom_gradient: bool = True):
  """Each expert on its unpadded slice rows[offsets[i]:offsets[i + 1]], one loop each way.

  Args:
    rows: [R, D] sorted by expert (rows past offsets[E] are not run).  offsets: [E + 1] int32.
    w1: [E, D, F].  b1: [E, F].  w2: [E, F, D].  b2: [E, D].
    custom_gradient: True in training: the hand-written backward loop. False for inference:
      TensorFlow's own gradient of the loop (slower), and no gradient function holding the
      loop's state, which a SavedModel cannot serialise.
  Returns:
    [offsets[E] + 1, D]: the outputs, then a zero row (which padding assignments read).
  """
  e, d, f = w1.shape

  def part(t, i):
    return t[offsets[i]:offsets[i + 1]]  # [n_i, ...] a view, no copy.

  def run_forward(rows, w1, b1, w2, b2):
    def forward(i):
      # bias_add: grappler fuses MatMul + BiasAdd (+ Relu) into one kernel.
      h = tf.nn.relu(tf.nn.bias_add(tf.matmul(part(rows, i), w1[i]), b1[i]))  # [n_i, F]
      return tf.nn.bias_add(tf.matmul(h, w2[i]), b2[i]), h  # [n_i, D], [n_i, F]

    outputs, hidden = _map_experts(forward, e, rows.dtype, [[None, d], [None, f]])
    zero_row = tf.zeros([1, d], rows.dtype)  # [1, D]
    return outputs.write(e, zero_row).concat(), hidden  # [offsets[E] + 1, D], E + 1 x [n_i, F]

  if not custom_gradient:
    return run_forward(rows, w1, b1, w2, b2)[0]

  @tf.custom_gradient
  def ffn(rows, w1, b1, w2, b2):
    outputs, hidden = run_forward(rows, w1, b1, w2, b2)

    def grad(dy):  # dy: [offsets[E] + 1, D]
      def backward(i):
        x, g, h = part(rows, i), part(dy, i), hidden.read(i)  # [n_i, D], [n_i, D], [n_i, F]
        dh = tf.raw_ops.ReluGrad(gradients=tf.matmul(g, w2[i], transpose_b=True), features=h)
        return (tf.matmul(dh, w1[i], transpose_b=True), tf.matmul(x, dh, transpose_a=True),
                tf.raw_ops.BiasAddGrad(out_backprop=dh), tf.matmul(h, g, transpose_a=True),
                tf.raw_ops.BiasAddGrad(out_backprop=g))

      shapes = [[None, d], [d, f], [f], [f, d], [d]]
      d_rows, *d_weights = _map_experts(backward, e, rows.dtype, shapes)
      d_rows = d_rows.write(e, tf.zeros([tf.shape(rows)[0] - offsets[e], d], rows.dtype))
      return [d_rows.concat()] + [array.gather(tf.range(e)) for array in d_weights]

    return outputs, grad

  return ffn(rows, w1, b1, w2, b2)
