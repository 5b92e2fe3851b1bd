"""Convolutional blocks of the MultiModel (paper section 2.1): ConvStep, ConvBlock, ConvRes.

Sequences are [B, T, D]; images [B, H, W, C]; there are no dummy axes. Causal convolutions (the
target side) pad on the left only. Given a `cache` (their last (kernel - 1) * dilation inputs,
zeros before the first position), the same `call` runs them on the next positions only and returns
the updated cache: incremental decoding goes through the code that training runs.

A causal step's cache is `dilation` buffers [B, kernel - 1, D], one per phase of the dilation,
the next position's first: slot j holds the past inputs that position t + j will read, oldest
first. One new position reads slot 0 and its own input, and the next cache is slots 1.. followed by
slot 0 shifted by that input: a copy of kernel - 1 rows instead of (kernel - 1) * dilation (112 for
the paper's 15x1 dilation-8 step), and the rotation of the list is free in a decoding loop.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from t2t_multimodel.layers.tracking import CheckpointedCollections

SERIALIZABLE = keras.saving.register_keras_serializable(package="t2t_multimodel")


def build_once(layer: keras.layers.Layer, *shapes) -> None:
  """Builds a sublayer from its parent's `build` unless it is built already."""
  if not layer.built:
    layer.build(*shapes)


def apply_mask(x: tf.Tensor, mask: tf.Tensor | None) -> tf.Tensor:
  """Zeroes padded positions: x [B, T, D], mask [B, T] (True / 1 = real)."""
  return x if mask is None else x * tf.cast(mask, x.dtype)[:, :, None]


@SERIALIZABLE
class SeparableConv1D(keras.layers.SeparableConv1D):
  """Keras's SeparableConv1D, the same weights, with the pointwise half as one matmul.

  Keras runs the pointwise half as a 1x1 Conv2D on [B, 1, T, C]; in a profile of a
  multimodel_small step on CPU that op and its two gradients ran at 70-100 GFLOP/s, a MatMul over
  [B * T, C] at ~200, and the step is ~2% faster with it (benchmarks/RESULTS.md). The depthwise
  half is Keras's own op. channels_last only.

  Example:
    >>> SeparableConv1D(32, 3)(tf.ones([2, 10, 16])).shape
    TensorShape([2, 8, 32])
  """

  def call(self, inputs):
    if self.data_format != "channels_last":
      raise ValueError(f"Expected data_format='channels_last'. Received: {self.data_format!r}")
    x = keras.ops.depthwise_conv(inputs, self.depthwise_kernel, strides=self.strides,
                                 padding=self.padding, dilation_rate=self.dilation_rate)  # [B, T', C m]
    y = self._pointwise(tf.reshape(x, [-1, x.shape[-1]]))                   # [B T', F]
    return tf.reshape(y, tf.concat([tf.shape(x)[:2], [self.filters]], axis=0))  # [B, T', F]

  def _pointwise(self, x):
    """The pointwise half, bias and activation on depthwise outputs x [N, C m] -> [N, F]."""
    y = keras.ops.matmul(x, self.pointwise_kernel[0])
    if self.use_bias:
      y = y + self.bias
    return y if self.activation is None else self.activation(y)

  def window_output(self, window):
    """The one output of a "valid", stride-1 convolution whose K inputs (every dilation-th, oldest
    first) are window [B, K, C] -> [B, 1, F].

    A weighted sum over the K inputs: a multiply and a sum instead of the convolution op, whose
    fixed cost (and SpaceToBatch when dilated) dominated a cached decoding step of one position.
    """
    if self.strides[0] != 1 or self.padding != "valid":
      raise ValueError(f"Expected a 'valid' convolution of stride 1. Received: "
                       f"padding={self.padding!r}, strides={self.strides}")
    multiplier = self.depthwise_kernel.shape[-1]
    depthwise = tf.reduce_sum(window[..., None] * self.depthwise_kernel, axis=1)  # [B, C, m]
    depthwise = tf.reshape(depthwise, [-1, window.shape[-1] * multiplier])  # [B, C m]
    return self._pointwise(depthwise)[:, None]                             # [B, 1, F]


@SERIALIZABLE
class ConvStep(CheckpointedCollections, keras.layers.Layer):
  """ConvStep(x) = LayerNorm(SepConv(ReLU(x))) over a sequence [B, T, D] -> [B, T / strides, F].

  Padded positions (mask False) are zeroed before the convolution, so they never reach a real
  position. Causal steps pad on the left only: output t sees inputs <= t.

  Args:
    filters: F, the output width.
    kernel_size: the convolution's width in time.
    dilation_rate: the dilation in time.
    strides: the stride in time (non-causal steps only); the output has ceil(T / strides)
      positions, the same as "same" padding.
    causal: pad on the left only, so position t sees inputs <= t.

  Example:
    >>> step = ConvStep(64, kernel_size=3, causal=True)
    >>> step(tf.ones([2, 10, 64])).shape
    TensorShape([2, 10, 64])
  """

  def __init__(self, filters: int, kernel_size: int, dilation_rate: int = 1, strides: int = 1,
               causal: bool = False, **kwargs):
    super().__init__(**kwargs)
    if kernel_size < 1 or dilation_rate < 1 or strides < 1:
      raise ValueError(f"Expected `kernel_size`, `dilation_rate` and `strides` >= 1. Received: "
                       f"kernel_size={kernel_size}, dilation_rate={dilation_rate}, strides={strides}")
    if causal and strides != 1:
      raise ValueError(f"Expected `strides` = 1 for a causal ConvStep. Received: strides={strides}")
    self.filters, self.kernel_size, self.dilation_rate = filters, kernel_size, dilation_rate
    self.strides, self.causal = strides, causal
    self.conv = SeparableConv1D(filters, kernel_size, strides=strides, dilation_rate=dilation_rate,
                                padding="valid", name="sep_conv")
    self.norm = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")

  @property
  def context(self) -> int:
    """How many past inputs a causal step keeps: (kernel - 1) * dilation."""
    return (self.kernel_size - 1) * self.dilation_rate

  def build(self, input_shape):
    self.input_channels = input_shape[-1]
    build_once(self.conv, (None, None, self.input_channels))  # "valid" after our own padding
    build_once(self.norm, (None, None, self.filters))

  def _padding(self, length):
    if self.causal:
      return self.context, 0
    outputs = (length + self.strides - 1) // self.strides                  # as "same": ceil(T / s)
    total = tf.maximum((outputs - 1) * self.strides + self.context + 1 - length, 0)
    return total // 2, total - total // 2

  def call(self, x, padding_mask=None, cache=None):
    """x [B, T, D] -> [B, T / s, F]; with `cache` (causal only: the past ReLU'd inputs as
    `init_cache`'s per-phase buffers, see the module docstring), the outputs of the T new
    positions and the new cache."""
    x = tf.nn.relu(apply_mask(x, padding_mask))                             # [B, T, D]
    if cache is not None and not self.causal:
      raise ValueError("Only a causal ConvStep runs from a `cache`.")
    if cache is not None and x.shape[1] == 1:                              # one new position
      window = tf.concat([cache[0], x], axis=1)                            # [B, K, D]
      return self.norm(self.conv.window_output(window)), list(cache[1:]) + [window[:, 1:]]
    if self.causal:
      past = (tf.zeros([tf.shape(x)[0], self.context, x.shape[-1]], x.dtype) if cache is None
              else self._interleave(cache))                                # [B, context, D]
      x = tf.concat([past, x], axis=1)                                     # [B, context + T, D]
    else:
      left, right = self._padding(tf.shape(x)[1])
      x = tf.pad(x, [[0, 0], [left, right], [0, 0]])                       # [B, T + pad, D]
    y = self.norm(self.conv(x))                                            # [B, T / s, F]
    if cache is None:
      return y
    return y, self._deinterleave(x[:, tf.shape(x)[1] - self.context:])

  def _interleave(self, slots) -> tf.Tensor:
    """Per-phase buffers (dilation x [B, K - 1, D]) -> the past inputs in time order [B, context, D]:
    slot j's row i is the input at offset dilation * i + j of the past."""
    stacked = tf.stack(slots, axis=2)                                      # [B, K - 1, dilation, D]
    return tf.reshape(stacked, [tf.shape(stacked)[0], self.context, stacked.shape[-1]])

  def _deinterleave(self, past) -> list[tf.Tensor]:
    """The inverse of `_interleave`: [B, context, D] -> dilation x [B, K - 1, D]."""
    grid = tf.reshape(past, [tf.shape(past)[0], self.kernel_size - 1, self.dilation_rate,
                             past.shape[-1]])                              # [B, K - 1, dilation, D]
    return tf.unstack(grid, axis=2)

  def init_cache(self, batch_size, dtype="float32") -> list[tf.Tensor]:
    """The zero buffers of a causal step: `dilation` x [B, kernel - 1, D] (left padding is zeros)."""
    return [tf.zeros([batch_size, self.kernel_size - 1, self.input_channels], dtype)
            for _ in range(self.dilation_rate)]

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "kernel_size": self.kernel_size,
            "dilation_rate": self.dilation_rate, "strides": self.strides, "causal": self.causal}


@SERIALIZABLE
class ConvBlock(CheckpointedCollections, keras.layers.Layer):
  """The paper's ConvBlock: four ConvSteps, two skip connections from the block input, dropout.

    h2 = x + ConvStep_{3x1}(ConvStep_{3x1}(x))
    h4 = x + ConvStep_{15x1, dilation 8}(ConvStep_{15x1}(h2))
    ConvBlock(x) = Dropout(h4)

  as in the paper's equations (the skips join the block input to the outputs of the second and
  fourth steps; the dropout, 40% in the paper, is applied to the block's output).

  Args:
    hidden_size: D, the width in and out.
    large_kernel_size: the kernel of the last two steps (the paper: 15).
    dropout: the dropout rate on the block's output.
    causal: left padding only (the mixer and the decoder).

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
    self.steps = [ConvStep(hidden_size, k, d, causal=causal, name=f"conv_step_{i}")
                  for i, (k, d) in enumerate(specs)]
    self.dropout = keras.layers.Dropout(dropout)

  def build(self, input_shape):
    for step in self.steps:
      build_once(step, (None, None, self.hidden_size))

  def call(self, x, padding_mask=None, training=False, cache=None):
    """x [B, T, D] -> [B, T, D]; with `cache` (causal blocks: `init_cache`'s buffers), the
    outputs of the T new positions and the new cache."""
    buffers = []

    def step(i, h):
      if cache is None:
        return self.steps[i](h, padding_mask=padding_mask)
      h, buffer = self.steps[i](h, padding_mask=padding_mask, cache=cache[i])
      buffers.append(buffer)
      return h

    h2 = x + step(1, step(0, x))                                           # [B, T, D]
    h4 = x + step(3, step(2, h2))                                          # [B, T, D]
    y = apply_mask(self.dropout(h4, training=training), padding_mask)
    return y if cache is None else (y, buffers)

  def init_cache(self, batch_size, dtype="float32") -> list[list[tf.Tensor]]:
    """Each ConvStep's zero buffers: dilation x [B, kernel - 1, D]."""
    return [s.init_cache(batch_size, dtype) for s in self.steps]

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "large_kernel_size": self.large_kernel_size, "dropout": self.dropout_rate,
            "causal": self.causal}


@SERIALIZABLE
class ConvRes(CheckpointedCollections, keras.layers.Layer):
  """Xception-style residual block: two separable ConvSteps, max-pooling, a strided shortcut.

    c2 = LN(SepConv(ReLU(LN(SepConv(ReLU(x))))))
    ConvRes(x) = MaxPool_{3, strides}(c2) + Conv_{1x1, strides}(x)

  Works on sequences [B, T, C] (rank 1) or images [B, H, W, C] (rank 2); "same" padding, so the
  output has ceil(size / strides) positions per axis. With a sequence `padding_mask`, padded
  positions are zeroed before each convolution and never win the max-pool, so real outputs are
  the same however much padding follows; padded outputs are 0.

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
    sep = SeparableConv1D if rank == 1 else keras.layers.SeparableConv2D
    conv = keras.layers.Conv1D if rank == 1 else keras.layers.Conv2D
    pool = keras.layers.MaxPooling1D if rank == 1 else keras.layers.MaxPooling2D
    self.conv_1 = sep(filters, kernel_size, padding="same", name="sep_conv_1")
    self.conv_2 = sep(filters, kernel_size, padding="same", name="sep_conv_2")
    self.norm_1 = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_1")
    self.norm_2 = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_2")
    self.pool = pool(3, strides=strides, padding="same")
    self.shortcut = conv(filters, 1, strides=strides, padding="same", name="shortcut")

  def build(self, input_shape):
    channels = input_shape[-1]
    spatial = (None,) * self.rank
    build_once(self.conv_1, (None, *spatial, channels))
    build_once(self.conv_2, (None, *spatial, self.filters))
    build_once(self.norm_1, (None, *spatial, self.filters))
    build_once(self.norm_2, (None, *spatial, self.filters))
    build_once(self.shortcut, (None, *spatial, channels))

  def output_mask(self, padding_mask: tf.Tensor) -> tf.Tensor:
    """The sequence mask [B, T] -> the output's [B, ceil(T / strides)]."""
    return padding_mask[:, ::self.strides]

  def call(self, x, padding_mask=None):
    """x [B, T, C] or [B, H, W, C]; padding_mask [B, T] (sequences only, True = real)."""
    real = None if padding_mask is None else tf.cast(padding_mask, tf.bool)[:, :, None]  # [B, T, 1]
    zero_padding = lambda t: t if real is None else tf.where(real, t, tf.zeros_like(t))
    x = zero_padding(x)
    y = self.norm_1(self.conv_1(tf.nn.relu(x)))
    y = self.norm_2(self.conv_2(tf.nn.relu(zero_padding(y))))
    if real is None:
      return self.pool(y) + self.shortcut(x)  # [B, T/s, F] | [B, H/s, W/s, F]
    y = tf.where(real, y, tf.constant(-1e4, y.dtype))                      # padding never wins the max
    out = self.pool(y) + self.shortcut(x)                                  # [B, T/s, F]
    return tf.where(self.output_mask(real[:, :, 0])[:, :, None], out, tf.zeros_like(out))

  def get_config(self):
    return {**super().get_config(), "filters": self.filters, "strides": self.strides,
            "rank": self.rank, "kernel_size": self.kernel_size}
