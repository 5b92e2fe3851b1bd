"""Modality nets (paper section 2.4): into the shared [B, T, D] space and out of it.

Each modality is a Keras layer with `bottom` (raw batch -> sequence, mask, grid), and, for
targets, `top` (body output -> logits) and `loss`. The model picks them by the problem's
modality names from MODALITY_NETS; problems that share a modality share its weights.

  symbol       int [B, T]          -> [B, T, D]; top: [B, T, D] -> logits [B, T, V]
  image        float [B, S, S, 3]  -> [B, (S/2^n)^2, D], the grid kept for the class-label top
  audio        float [B, F, 80]    -> [B, F/2^s, D]; frames are channels of a 1-D ConvRes net
  class_label  top: [B, T, D] (+ grid) -> logits [B, C] (the Xception-like exit flow)
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.layers.conv import SERIALIZABLE, ConvRes
from t2t_multimodel.registry import Registry
from t2t_multimodel.vocab import PAD_ID

MODALITY_NETS: Registry = Registry("modality")


def smoothed_cross_entropy(logits, labels, weights, label_smoothing: float):
  """Mean label-smoothed cross-entropy over weighted positions, and the weight sum."""
  num_classes = logits.shape[-1]
  onehot = tf.one_hot(labels, num_classes)
  if label_smoothing:
    onehot = onehot * (1.0 - label_smoothing) + label_smoothing / num_classes
  xent = tf.nn.softmax_cross_entropy_with_logits(onehot, tf.cast(logits, tf.float32))
  total = tf.reduce_sum(weights)
  return tf.reduce_sum(xent * weights) / tf.maximum(total, 1.0), total


@SERIALIZABLE
class SymbolModality(keras.layers.Layer):
  """The shared subword vocabulary: one embedding for every text input and target (scaled by
  sqrt(D)), and an untied linear softmax layer out."""

  def __init__(self, vocab_size: int, hidden_size: int, **kwargs):
    super().__init__(**kwargs)
    self.vocab_size, self.hidden_size = vocab_size, hidden_size
    self.embedding = keras.layers.Embedding(
        vocab_size, hidden_size, name="embedding",
        embeddings_initializer=keras.initializers.RandomNormal(stddev=hidden_size ** -0.5))
    self.softmax = keras.layers.Dense(vocab_size, name="softmax")

  def embed(self, ids):
    return self.embedding(ids) * math.sqrt(self.hidden_size)              # [B, T, D]

  def bottom(self, ids, training=False):
    mask = tf.not_equal(ids, PAD_ID)                                       # [B, T]
    return self.embed(ids), mask, None

  def top(self, body_output, **unused):
    return self.softmax(body_output)                                       # [B, T, V]

  def loss(self, logits, targets, label_smoothing: float):
    weights = tf.cast(tf.not_equal(targets, PAD_ID), tf.float32)           # [B, T]
    return smoothed_cross_entropy(logits, targets, weights, label_smoothing)

  def get_config(self):
    return {**super().get_config(), "vocab_size": self.vocab_size, "hidden_size": self.hidden_size}


def image_blocks(image_size: int) -> int:
  """Stride-2 blocks that bring an image to a grid of about 8x8 (at least 1, at most 4)."""
  return max(1, min(4, round(math.log2(max(image_size, 16) / 8))))


@SERIALIZABLE
class ImageModality(keras.layers.Layer):
  """Xception-like entry flow: a 3x3 conv, then ConvRes blocks of stride 2 deepening to D; the
  grid is flattened row-major into a sequence."""

  def __init__(self, hidden_size: int, image_size: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size, self.image_size = hidden_size, image_size
    n = image_blocks(image_size)
    widths = [max(hidden_size // 2 ** (n - 1 - i), 16) for i in range(n)]
    self.stem = keras.layers.Conv2D(max(widths[0] // 2, 16), 3, padding="same", name="stem")
    self.blocks = [ConvRes(w, strides=2, rank=2, name=f"conv_res_{i}") for i, w in enumerate(widths)]
    self.project = keras.layers.Dense(hidden_size, name="project")

  def bottom(self, images, training=False):
    x = self.stem(images * 2.0 - 1.0)                                      # [B, S, S, C]
    for block in self.blocks:
      x = block(x)                                                         # [B, S/2^i, S/2^i, C_i]
    height, width = x.shape[1], x.shape[2]
    x = self.project(tf.reshape(x, [-1, height * width, x.shape[-1]]))     # [B, h * w, D]
    mask = tf.ones(tf.shape(x)[:2], tf.bool)                               # [B, h * w]
    return x, mask, (height, width)

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size, "image_size": self.image_size}


@SERIALIZABLE
class AudioModality(keras.layers.Layer):
  """Log-mel frames [B, F, 80] through `blocks` 1-D ConvRes blocks, the first `time_strides` of
  them halving time. (The paper ran 8 stride-2 blocks on raw waveforms; on 10 ms spectrogram
  frames that would leave a handful of positions, so the strides are an hparam.)"""

  def __init__(self, hidden_size: int, blocks: int, time_strides: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size, self.num_blocks, self.time_strides = hidden_size, blocks, time_strides
    self.project_in = keras.layers.Dense(hidden_size, name="project_in")
    self.blocks = [ConvRes(hidden_size, strides=2 if i < time_strides else 1, rank=1,
                           name=f"conv_res_{i}") for i in range(blocks)]

  def bottom(self, frames, training=False):
    mask = tf.reduce_any(tf.not_equal(frames, 0.0), axis=-1)              # [B, F]
    x = self.project_in(frames)                                            # [B, F, D]
    for i, block in enumerate(self.blocks):
      x = block(x * tf.cast(mask, x.dtype)[:, :, None])
      if i < self.time_strides:
        mask = mask[:, ::2]                                                # follows the stride
    return x * tf.cast(mask, x.dtype)[:, :, None], mask, None              # [B, F / 2^s, D]

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size, "blocks": self.num_blocks,
            "time_strides": self.time_strides}


@SERIALIZABLE
class ClassLabelModality(keras.layers.Layer):
  """The categorical exit flow: image inputs' body output is reshaped back to its grid, then
  separable convs, downsampling, global average pooling and a linear layer to the classes;
  sequence inputs are pooled over time (masked)."""

  def __init__(self, hidden_size: int, num_classes: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size, self.num_classes = hidden_size, num_classes
    self.exit_1d = ConvRes(hidden_size, strides=2, rank=1, name="exit_1d")
    self.exit_2d = ConvRes(hidden_size, strides=2, rank=2, name="exit_2d")
    self.conv = keras.layers.SeparableConv2D(hidden_size, 3, padding="same", name="sep_conv")
    self.logits = keras.layers.Dense(num_classes, name="logits")

  def top(self, body_output, mask=None, grid=None):
    if grid is not None:
      x = tf.reshape(body_output, [-1, grid[0], grid[1], body_output.shape[-1]])  # [B, h, w, D]
      x = tf.nn.relu(self.conv(self.exit_2d(x)))                           # [B, h/2, w/2, D]
      pooled = tf.reduce_mean(x, axis=[1, 2])                              # [B, D]
    else:
      x = self.exit_1d(body_output)                                        # [B, T/2, D]
      weights = tf.cast(mask[:, ::2], x.dtype)[:, :, None]
      pooled = tf.reduce_sum(x * weights, 1) / tf.maximum(tf.reduce_sum(weights, 1), 1.0)
    return self.logits(pooled)                                             # [B, C]

  def loss(self, logits, targets, label_smoothing: float):
    labels = tf.reshape(targets, [-1])                                     # [B]
    return smoothed_cross_entropy(logits, labels, tf.ones(tf.shape(labels), tf.float32),
                                  label_smoothing)

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size, "num_classes": self.num_classes}


MODALITY_NETS.add("symbol", lambda hp, problem: SymbolModality(hp.vocab_size, hp.hidden_size, name="symbol"))
MODALITY_NETS.add("image", lambda hp, problem: ImageModality(hp.hidden_size, hp.image_size, name="image"))
MODALITY_NETS.add("audio", lambda hp, problem: AudioModality(
    hp.hidden_size, hp.audio_blocks, hp.audio_time_strides, name="audio"))
MODALITY_NETS.add("class_label", lambda hp, problem: ClassLabelModality(
    hp.hidden_size, problem["num_classes"], name=f"class_label_{problem['num_classes']}"))


def modality_key(modality: str, problem: dict) -> str:
  """Problems with equal keys share the modality net (class labels: by number of classes)."""
  return f"class_label_{problem['num_classes']}" if modality == "class_label" else modality
