"""Multi-head dot-product attention with sinusoidal timing signals (paper section 2.2).

`Attention` projects queries from one sequence and keys/values from a memory; `project_memory`
computes the keys/values once, so decoding attends to the encoder without recomputing them, and
the self-attention keys/values of past positions are kept in fixed-size cache buffers.
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from t2t_multimodel.layers.conv import SERIALIZABLE

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


def padding_bias(mask: tf.Tensor) -> tf.Tensor:
  """Memory mask [B, S] (True = real) -> additive attention bias [B, 1, 1, S]."""
  return (1.0 - tf.cast(mask, tf.float32))[:, None, None, :] * NEG_INF


def causal_bias(length) -> tf.Tensor:
  """[1, 1, T, T]: position t may attend to positions <= t."""
  allowed = tf.linalg.band_part(tf.ones([length, length]), -1, 0)            # [T, T]
  return ((1.0 - allowed) * NEG_INF)[None, None]


@SERIALIZABLE
class Attention(keras.layers.Layer):
  """Multi-head dot-product attention with its own projections.

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
    self.query.build(query_shape)
    self.key_value.build(memory_shape or query_shape)
    self.output_dense.build(query_shape)

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
