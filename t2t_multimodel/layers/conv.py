"""Convolutional blocks of the MultiModel (paper section 2.1): ConvStep, ConvBlock, ConvRes.

Sequences are [B, T, D]; images [B, H, W, C]. Causal convolutions pad on the left only, and keep
their last (kernel - 1) * dilation inputs in a cache for incremental decoding.
"""

from __future__ import annotations

import keras
import tensorflow as tf

SERIALIZABLE = keras.saving.register_keras_serializable(package="t2t_multimodel")


def apply_mask(x: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
  """Zeroes padded positions: x [B, T, D], mask [B, T] (True / 1 = real)."""
  return x if mask is None else x * tf.cast(mask, x.dtype)[:, :, None]


@SERIALIZABLE
class ConvStep(keras.layers.Layer):
  """LayerNorm(SepConv(ReLU(x))) over a sequence, optionally causal.

  Args:
    filters: output width.
    kernel_size: the convolution's width in time.
    dilation_rate: the dilation in time.
    causal: pad on the left only, so position t sees inputs <= t.

  Example:
    >>> step = ConvStep(64, kernel_size=3, causal=True)
    >>> step(tf.ones([2, 10, 64])).shape
    TensorShape([2, 10, 64])
  """

  def __init__(self, filters: int, kernel_size: int, dilation_rate: int = 1, causal: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    if kernel_size < 1 or dilation_rate < 1:
      raise ValueError(f"Expected `kernel_size` >= 1 and `dilation_rate` >= 1. Received: "
                       f"kernel_size={kernel_size}, dilation_rate={dilation_rate}")
    self.filters, self.kernel_size, self.dilation_rate, self.causal = (
        filters, kernel_size, dilation_rate, causal)
    self.conv = keras.layers.SeparableConv1D(filters, kernel_size, dilation_rate=dilation_rate,
                                             padding="valid", name="sep_conv")
    self.norm = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")

  @property
  def context(self) -> int:
    """How many past inputs the causal step keeps: (kernel - 1) * dilation."""
    return (self.kernel_size - 1) * self.dilation_rate

  def build(self, input_shape):
    self.conv.build((None, None, input_shape[-1]))  # time unknown: valid padding after our own
    self.norm.build((None, None, self.filters))

  def call(self, x, padding_mask=None):
    x = tf.nn.relu(apply_mask(x, padding_mask))                                   # [B, T, D]
    left = self.context if self.causal else self.context // 2
    x = tf.pad(x, [[0, 0], [left, self.context - left], [0, 0]])           # [B, T + context, D]
    return self.norm(self.conv(x))                                         # [B, T, F]

  def step(self, x, buffer):
    """One causal position: x [B, 1, D], buffer [B, context, D] of past ReLU'd inputs."""
    window = tf.concat([buffer, tf.nn.relu(x)], axis=1)                   # [B, context + 1, D]
    return self.norm(self.conv(window)), window[:, 1:]                     # [B, 1, F], new buffer

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate, "causal": self.causal}


@SERIALIZABLE
class ConvBlock(keras.layers.Layer):
  """The paper's ConvBlock: four ConvSteps with two residual connections and dropout.

    h2 = x + dropout(step_{3x1, d=1}(step_{3x1, d=1}(x)))
    h4 = x + dropout(step_{15x1, d=8}(step_{15x1, d=1}(h2)))

  Args:
    hidden_size: D, the width in and out.
    large_kernel_size: the kernel of the last two steps (the paper: 15).
    dropout: the dropout rate after each pair of steps (the paper: 0.4).
    causal: left padding only (the decoder side).

  Example:
    >>> block = ConvBlock(64, causal=True)
    >>> block(tf.ones([2, 10, 64])).shape
    TensorShape([2, 10, 64])
  """

  def __init__(self, hidden_size: int, large_kernel_size: int = 15, dropout: float = 0.0,
               causal: bool = False, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size, self.large_kernel_size, self.dropout_rate, self.causal = (
        hidden_size, large_kernel_size, dropout, causal)
    specs = [(3, 1), (3, 1), (large_kernel_size, 1), (large_kernel_size, 8)]
    self.steps = [ConvStep(hidden_size, k, d, causal, name=f"conv_step_{i}")
                  for i, (k, d) in enumerate(specs)]
    self.dropout = keras.layers.Dropout(dropout)

  def build(self, input_shape):
    for step in self.steps:
      step.build(input_shape)

  def call(self, x, padding_mask=None, training=False):
    m = padding_mask                                                       # [B, T] or None
    h = self.steps[1](self.steps[0](x, padding_mask=m), padding_mask=m)   # [B, T, D]
    h2 = x + self.dropout(h, training=training)
    h = self.steps[3](self.steps[2](h2, padding_mask=m), padding_mask=m)
    return apply_mask(x + self.dropout(h, training=training), m)          # [B, T, D]

  def init_cache(self, batch_size, dtype=tf.float32) -> list[tf.Tensor]:
    return [tf.zeros([batch_size, s.context, self.hidden_size], dtype) for s in self.steps]

  def step(self, x, cache):
    """One causal position x [B, 1, D] with the per-step buffers; returns y [B, 1, D], cache."""
    h, b0 = self.steps[0].step(x, cache[0])
    h, b1 = self.steps[1].step(h, cache[1])
    h2 = x + h
    h, b2 = self.steps[2].step(h2, cache[2])
    h, b3 = self.steps[3].step(h, cache[3])
    return x + h, [b0, b1, b2, b3]

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "large_kernel_size": self.large_kernel_size, "dropout": self.dropout_rate,
            "causal": self.causal}


@SERIALIZABLE
class ConvRes(keras.layers.Layer):
  """Xception-style residual block: two separable convs, then max-pooling with a strided shortcut.

    y = maxpool_s(LN(SepConv(ReLU(LN(SepConv(ReLU(x))))))) + Conv_1x1,s(x)

  Works on sequences [B, T, C] (rank 1) or images [B, H, W, C] (rank 2).

  Args:
    filters: output channels.
    strides: the downsampling (1 keeps the size).
    rank: 1 for sequences, 2 for images.
    kernel_size: the separable convolutions' kernel.

  Example:
    >>> ConvRes(32, strides=2, rank=2)(tf.ones([2, 16, 16, 3])).shape
    TensorShape([2, 8, 8, 32])
  """

  def __init__(self, filters: int, strides: int = 2, rank: int = 1, kernel_size: int = 3, **kwargs):
    super().__init__(**kwargs)
    if rank not in (1, 2):
      raise ValueError(f"Expected `rank` in (1, 2). Received: rank={rank}")
    self.filters, self.strides, self.rank, self.kernel_size = filters, strides, rank, kernel_size
    sep = keras.layers.SeparableConv1D if rank == 1 else keras.layers.SeparableConv2D
    conv = keras.layers.Conv1D if rank == 1 else keras.layers.Conv2D
    pool = keras.layers.MaxPooling1D if rank == 1 else keras.layers.MaxPooling2D
    self.conv_1 = sep(filters, kernel_size, padding="same", name="sep_conv_1")
    self.conv_2 = sep(filters, kernel_size, padding="same", name="sep_conv_2")
    self.norm_1 = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_1")
    self.norm_2 = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_2")
    self.pool = pool(3, strides=strides, padding="same")
    self.shortcut = conv(filters, 1, strides=strides, padding="same", name="shortcut")

  def call(self, x):
    y = self.norm_1(self.conv_1(tf.nn.relu(x)))
    y = self.norm_2(self.conv_2(tf.nn.relu(y)))
    return self.pool(y) + self.shortcut(x)                                # [B, T/s, F] or [B, H/s, W/s, F]

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "strides": self.strides,
            "rank": self.rank, "kernel_size": self.kernel_size}
