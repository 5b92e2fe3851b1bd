"""Multi-head dot-product attention with sinusoidal timing signals (paper section 2.2).

`Attention` projects queries from one sequence and keys/values from a memory; `project_memory`
computes the keys/values once, so decoding attends to the encoder without recomputing them.
`AttentionBlock` is the paper's attention block: the timed target is mixed by two causal
ConvSteps, attends to itself under a causal mask, then attends to the source. Given a `cache` of
fixed-size buffers (conv inputs, self-attention keys/values of the positions so far) and the
`position` of its one target, the same `call` computes that position alone and returns the updated
cache, so one traced step serves every position and decoding runs the code that training runs.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from t2t_multimodel.layers.conv import build_once, ConvStep, SERIALIZABLE
from t2t_multimodel.layers.tracking import CheckpointedCollections

NEG_INF = -1e9


def timing_signal(length, channels: int, start=0) -> tf.Tensor:
  """T2T's sinusoidal position signal for positions start..start+length-1: [length, channels]."""
  position = tf.cast(tf.range(length) + start, tf.float32)                  # [T]
  num_timescales = channels // 2
  log_increment = math.log(1.0e4) / max(num_timescales - 1, 1)
  inv_timescales = tf.exp(tf.range(num_timescales, dtype=tf.float32) * -log_increment)  # [C/2]
  scaled = position[:, None] * inv_timescales[None, :]                       # [T, C/2]
  signal = tf.concat([tf.sin(scaled), tf.cos(scaled)], axis=1)               # [T, 2 * (C/2)]
  return tf.pad(signal, [[0, 0], [0, channels % 2]])                         # [T, C]


def add_timing(x: tf.Tensor, start=0) -> tf.Tensor:
  """x [B, T, D] plus the timing signal of positions start..start+T-1."""
  return x + tf.cast(timing_signal(tf.shape(x)[1], x.shape[-1], start), x.dtype)[None]


def padding_bias(mask: tf.Tensor) -> tf.Tensor:
  """Memory mask [B, S] (True = real) -> additive attention bias [B, 1, 1, S]."""
  return (1.0 - tf.cast(mask, tf.float32))[:, None, None, :] * NEG_INF


def causal_bias(length) -> tf.Tensor:
  """[1, 1, T, T]: position t may attend to positions <= t."""
  allowed = tf.linalg.band_part(tf.ones([length, length]), -1, 0)            # [T, T]
  return ((1.0 - allowed) * NEG_INF)[None, None]


def write_position(buffer: tf.Tensor, position, update: tf.Tensor) -> tf.Tensor:
  """buffer [B, H, L, D/H] with update [B, H, 1, D/H] written at index `position` of L.

  A scatter of B*H rows of D/H: TensorFlow updates the buffer in place when nothing else holds
  it (as in the decoding loop), so a step writes O(B * D), not the O(B * L * D) of a masked blend.
  """
  b, h = tf.shape(buffer)[0], tf.shape(buffer)[1]
  batch, head = tf.meshgrid(tf.range(b), tf.range(h), indexing="ij")       # [B, H] each
  indices = tf.stack([batch, head, tf.fill([b, h], position)], axis=-1)    # [B, H, 3]
  return tf.tensor_scatter_nd_update(buffer, indices, update[:, :, 0])     # rows [B, H, D/H]


@SERIALIZABLE
class Attention(CheckpointedCollections, keras.layers.Layer):
  """Multi-head dot-product attention with its own projections (no biases).

  Args:
    hidden_size: D, the width of queries, memory and output.
    num_heads: H; D must be divisible by H.
    dropout: dropout on the attention weights.

  Example:
    >>> attention = Attention(64, num_heads=4)
    >>> attention(tf.ones([2, 5, 64]), tf.ones([2, 7, 64])).shape
    TensorShape([2, 5, 64])
  """

  def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    if hidden_size % num_heads:
      raise ValueError(f"Expected `hidden_size` divisible by `num_heads`. Received: "
                       f"hidden_size={hidden_size}, num_heads={num_heads}")
    self.hidden_size, self.num_heads, self.dropout_rate = hidden_size, num_heads, dropout
    self.query = keras.layers.Dense(hidden_size, use_bias=False, name="query")
    self.key_value = keras.layers.Dense(2 * hidden_size, use_bias=False, name="key_value")
    self.output_dense = keras.layers.Dense(hidden_size, use_bias=False, name="output")
    self.dropout = keras.layers.Dropout(dropout)

  def build(self, query_shape, memory_shape=None):
    shape = (None, None, self.hidden_size)
    build_once(self.query, query_shape)
    build_once(self.key_value, memory_shape or query_shape)
    build_once(self.output_dense, shape)

  def _split_heads(self, x):
    b, t = tf.shape(x)[0], tf.shape(x)[1]
    x = tf.reshape(x, [b, t, self.num_heads, self.hidden_size // self.num_heads])  # [B, T, H, D/H]
    return tf.transpose(x, [0, 2, 1, 3])                                   # [B, H, T, D/H]

  def project_memory(self, memory):
    """memory [B, S, D] -> (keys, values), each [B, H, S, D/H]."""
    keys, values = tf.split(self.key_value(memory), 2, axis=-1)            # [B, S, D] each
    return self._split_heads(keys), self._split_heads(values)

  def attend(self, query, keys, values, bias=None, training=False):
    """query [B, T, D] against projected keys/values [B, H, S, D/H] -> [B, T, D]."""
    q = self._split_heads(self.query(query))                               # [B, H, T, D/H]
    q *= (self.hidden_size // self.num_heads) ** -0.5
    logits = tf.einsum("bhtd,bhsd->bhts", q, keys)                         # [B, H, T, S]
    if bias is not None:
      logits += tf.cast(bias, logits.dtype)
    weights = self.dropout(tf.nn.softmax(logits, axis=-1), training=training)
    context = tf.einsum("bhts,bhsd->bhtd", weights, values)                # [B, H, T, D/H]
    context = tf.transpose(context, [0, 2, 1, 3])                          # [B, T, H, D/H]
    b, t = tf.shape(context)[0], tf.shape(context)[1]
    return self.output_dense(tf.reshape(context, [b, t, self.hidden_size]))  # [B, T, D]

  def call(self, query, memory, bias=None, training=False):
    keys, values = self.project_memory(memory)
    return self.attend(query, keys, values, bias, training)

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size, "num_heads": self.num_heads,
            "dropout": self.dropout_rate}


@SERIALIZABLE
class AttentionBlock(CheckpointedCollections, keras.layers.Layer):
  """The paper's attention block (and T2T slicenet's): the targets attend to themselves and a source.

    t = ConvStep_{5x1, dilation 4}(ConvStep_{5x1}(targets + timing))     causal mixing
    q = LayerNorm(t + Dropout(SelfAttention(t, causal mask)))
    AttentionBlock(targets, source) = Attention(q, keys/values of source + timing)

  The source keys/values come from pointwise projections of the timed source and are computed
  once per input (`project_memory`). The caller adds the result to its stream (a residual).

  Args:
    hidden_size: D.
    num_heads: attention heads (D divisible by them).
    dropout: dropout on the self-attention's residual branch.
    attention_dropout: dropout on the attention weights.
    kernel_size: the width of the two causal ConvSteps (T2T: 5).

  Example:
    >>> block = AttentionBlock(64, num_heads=4)
    >>> keys, values = block.project_memory(tf.ones([2, 7, 64]))
    >>> block(tf.ones([2, 5, 64]), keys, values).shape
    TensorShape([2, 5, 64])
  """

  def __init__(self, hidden_size: int, num_heads: int, dropout: float = 0.0,
               attention_dropout: float = 0.0, kernel_size: int = 5, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size, self.num_heads, self.kernel_size = hidden_size, num_heads, kernel_size
    self.dropout_rate, self.attention_dropout = dropout, attention_dropout
    self.conv_steps = [ConvStep(hidden_size, kernel_size, dilation, causal=True, name=f"conv_step_{i}")
                       for i, dilation in enumerate((1, 4))]
    self.self_attention = Attention(hidden_size, num_heads, attention_dropout, name="self_attention")
    self.self_norm = keras.layers.LayerNormalization(epsilon=1e-6, name="self_norm")
    self.memory_attention = Attention(hidden_size, num_heads, attention_dropout, name="memory_attention")
    self.dropout = keras.layers.Dropout(dropout)

  def build(self, targets_shape, *unused_shapes):
    shape = (None, None, self.hidden_size)
    for layer in self.conv_steps:
      build_once(layer, shape)
    for layer in (self.self_attention, self.memory_attention):
      build_once(layer, shape, shape)
    build_once(self.self_norm, shape)

  def project_memory(self, source):
    """source [B, S, D] -> (keys, values) [B, H, S, D/H] each: computed once per input."""
    build_once(self, source.shape)
    return self.memory_attention.project_memory(add_timing(source))

  def call(self, targets, keys, values, bias=None, training=False, cache=None, position=None):
    """targets [B, T, D]; keys/values from `project_memory`; bias [B, 1, 1, S] -> [B, T, D].

    With `cache` (from `init_cache`) and `position` (int32 scalar), targets is the one position
    [B, 1, D] at that index; returns ([B, 1, D], the cache with that position written).
    """
    t = add_timing(targets, start=0 if cache is None else position)
    convs = []
    for i, step in enumerate(self.conv_steps):
      if cache is None:
        t = step(t)                                                        # [B, T, D]
      else:
        t, buffer = step(t, cache=cache["convs"][i])                       # [B, 1, D]
        convs.append(buffer)
    self_keys, self_values = self.self_attention.project_memory(t)        # [B, H, T, D/H] each
    if cache is None:
      self_bias = causal_bias(tf.shape(t)[1])                              # [1, 1, T, T]
    else:
      self_keys = write_position(cache["keys"], position, self_keys)       # [B, H, L, D/H]
      self_values = write_position(cache["values"], position, self_values)
      seen = tf.range(tf.shape(self_keys)[2]) <= position                  # [L]
      self_bias = (1.0 - tf.cast(seen, tf.float32))[None, None, None, :] * NEG_INF  # [1, 1, 1, L]
    self_out = self.self_attention.attend(t, self_keys, self_values, self_bias, training)
    q = self.self_norm(t + self.dropout(self_out, training=training))
    out = self.memory_attention.attend(q, keys, values, bias, training)   # [B, T, D]
    if cache is None:
      return out
    return out, {"convs": convs, "keys": self_keys, "values": self_values}

  def init_cache(self, batch_size, max_length: int, dtype="float32") -> dict:
    """Zero conv buffers and self-attention keys/values [B, H, max_length, D/H]."""
    heads = [batch_size, self.num_heads, max_length, self.hidden_size // self.num_heads]
    return {"convs": [s.init_cache(batch_size, dtype) for s in self.conv_steps],
            "keys": tf.zeros(heads, dtype), "values": tf.zeros(heads, dtype)}

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size, "num_heads": self.num_heads,
            "dropout": self.dropout_rate, "attention_dropout": self.attention_dropout,
            "kernel_size": self.kernel_size}
