"""Modality nets (the paper's section 2): into the shared [B, T, D] space and out of it.

A modality net is a Keras layer with `bottom` (raw batch -> (sequence [B, T, D], mask [B, T],
grid)) and, for targets, `top` (body output -> logits) and `loss`. The model picks them by the
problem's modality names from MODALITY_NETS (never by type tests); every problem that uses a
modality shares its net and weights: one symbol net serves every text input and target.

  symbol       int [B, T]          -> [B, T, D]; top: [B, T, D] -> logits [B, T, V]
  image        float [B, S, S, 3]  -> [B, h * w, D], grid (h, w) kept for the class-label top
  audio        float [B, F, 80]    -> [B, ceil(F / 2^s), D]
  class_label  top: [B, T, D] (+ grid) -> logits [B, C] (the Xception-like exit flow)
"""

from __future__ import annotations

import math

import keras
import tensorflow as tf

from t2t_multimodel.data.vocab import PAD_ID
from t2t_multimodel.hparams.base import HParams, image_strides
from t2t_multimodel.model.layers.conv import ConvRes, SERIALIZABLE
from t2t_multimodel.model.layers.tracking import CheckpointedCollections
from t2t_multimodel.registry import Registry

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
class SymbolModality(CheckpointedCollections, keras.layers.Layer):
  """The shared subword vocabulary: one embedding for every text input and target, scaled by
  sqrt(D); out, an untied linear layer to the vocabulary (softmax in the loss).

  Args:
    vocab_size: V, the shared vocabulary's size.
    hidden_size: D.

  Example:
    >>> net = SymbolModality(8192, 64)
    >>> x, mask, _ = net.bottom(tf.constant([[5, 6, 1, 0]]))   # [1, 4, 64], [1, 4]
    >>> net.top(x).shape
    TensorShape([1, 4, 8192])
  """

  def __init__(self, vocab_size: int, hidden_size: int, **kwargs):
    super().__init__(**kwargs)
    self.vocab_size, self.hidden_size = vocab_size, hidden_size
    self.embedding = keras.layers.Embedding(
        vocab_size, hidden_size, name="embedding",
        embeddings_initializer=keras.initializers.RandomNormal(stddev=hidden_size ** -0.5))
    self.softmax = keras.layers.Dense(vocab_size, name="softmax", dtype="float32")  # float32 logits

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


@SERIALIZABLE
class ImageModality(CheckpointedCollections, keras.layers.Layer):
  """The paper's image modality net, an Xception-like entry flow, then flattened to a sequence:

    h = LN(Conv_{3x3, C/16}(ReLU(LN(Conv_{3x3, C/32, stride}(x)))))    the stem
    ImageModalityIn(x) = ConvRes(ConvRes(ConvRes(h, D/8), D/4), D)   -> [B, h * w, D]

  With D = 1024 the widths are the paper's 32, 64, 128, 256, 1024. The paper strides the first
  stem conv and the three ConvRes blocks by 2 (224 -> 14); small images use only the last
  `image_strides(image_size)` of those four strides, ending near an 8x8 grid. Pixels come in
  [0, 1] and are mapped to [-1, 1]. The grid is flattened row-major.

  Args:
    hidden_size: D.
    image_size: the input's height and width.

  Example:
    >>> net = ImageModality(64, image_size=16)
    >>> x, mask, grid = net.bottom(tf.zeros([2, 16, 16, 3]))
    >>> x.shape, grid
    (TensorShape([2, 64, 64]), (8, 8))
  """

  def __init__(self, hidden_size: int, image_size: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden_size, self.image_size = hidden_size, image_size
    d = hidden_size
    strides = [2 if i >= 4 - image_strides(image_size) else 1 for i in range(4)]
    self.stem_1 = keras.layers.Conv2D(max(d // 32, 8), 3, strides=strides[0], padding="same",
                                      name="stem_conv_1")
    self.stem_2 = keras.layers.Conv2D(max(d // 16, 8), 3, padding="same", name="stem_conv_2")
    self.stem_norms = [keras.layers.LayerNormalization(epsilon=1e-6, name=f"stem_norm_{i}")
                       for i in (1, 2)]
    widths = [max(d // 8, 16), max(d // 4, 16), d]
    self.blocks = [ConvRes(w, strides=s, rank=2, name=f"conv_res_{i}")
                   for i, (w, s) in enumerate(zip(widths, strides[1:]))]

  def bottom(self, images, training=False):
    x = self.stem_norms[0](self.stem_1(images * 2.0 - 1.0))                # [B, S/s, S/s, D/32]
    x = self.stem_norms[1](self.stem_2(tf.nn.relu(x)))                     # [B, S/s, S/s, D/16]
    for block in self.blocks:
      x = block(x)                                                         # [B, h_i, w_i, C_i]
    height, width = x.shape[1], x.shape[2]
    x = tf.reshape(x, [-1, height * width, self.hidden_size])              # [B, h * w, D]
    mask = tf.ones(tf.shape(x)[:2], tf.bool)                               # [B, h * w]
    return x, mask, (height, width)

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size, "image_size": self.image_size}


def normalize_frames(frames, mask, epsilon: float = 1e-6):
  """Each feature of each example to zero mean and unit variance over its unmasked frames;
  masked frames become zero. frames [B, F, M], mask bool [B, F] -> [B, F, M]."""
  weights = tf.cast(mask, frames.dtype)[..., None]                         # [B, F, 1]
  count = tf.maximum(tf.reduce_sum(weights, axis=1, keepdims=True), 1.0)   # [B, 1, 1]
  mean = tf.reduce_sum(frames * weights, axis=1, keepdims=True) / count    # [B, 1, M]
  centred = (frames - mean) * weights                                      # [B, F, M]
  variance = tf.reduce_sum(tf.square(centred), axis=1, keepdims=True) / count
  return centred * tf.math.rsqrt(variance + epsilon)


@SERIALIZABLE
class AudioModality(CheckpointedCollections, keras.layers.Layer):
  """Log-mel frames [B, F, 80] -> (with `normalize`, each mel bin scaled to zero mean and unit
  variance over the utterance's frames) a linear map to D, then `blocks` 1-D ConvRes blocks, the
  first `time_strides` of them halving time: [B, ceil(F / 2^time_strides), D].

  The paper ran 8 stride-2 ConvRes blocks on raw waveforms (or 2-D spectrograms); on 10 ms log-mel
  frames 8 halvings would leave too few positions, so how many blocks stride is an hparam. Frames
  that are all zero are padding; the mask follows the strides and every block masks the padding
  (see ConvRes), so the real outputs do not depend on how much padding a batch has.

  Args:
    hidden_size: D.
    blocks: the number of ConvRes blocks.
    time_strides: how many of them (the first ones) have stride 2.
    normalize: per-utterance mean and variance normalisation (padding frames stay zero).

  Example:
    >>> net = AudioModality(64, blocks=4, time_strides=2)
    >>> x, mask, _ = net.bottom(tf.ones([2, 40, 80]))
    >>> x.shape, mask.shape
    (TensorShape([2, 10, 64]), TensorShape([2, 10]))
  """

  def __init__(self, hidden_size: int, blocks: int, time_strides: int, normalize: bool = False,
               **kwargs):
    super().__init__(**kwargs)
    if not 0 <= time_strides <= blocks:
      raise ValueError(f"Expected 0 <= `time_strides` <= `blocks`. Received: "
                       f"time_strides={time_strides}, blocks={blocks}")
    self.hidden_size, self.num_blocks, self.time_strides = hidden_size, blocks, time_strides
    self.normalize = normalize
    self.project_in = keras.layers.Dense(hidden_size, name="project_in")
    self.blocks = [ConvRes(hidden_size, strides=2 if i < time_strides else 1, rank=1,
                           name=f"conv_res_{i}") for i in range(blocks)]

  def bottom(self, frames, training=False):
    mask = tf.reduce_any(tf.not_equal(frames, 0.0), axis=-1)              # [B, F]
    if self.normalize:
      frames = normalize_frames(frames, mask)                              # [B, F, 80]
    x = self.project_in(frames)                                            # [B, F, D]
    for block in self.blocks:
      x, mask = block(x, padding_mask=mask), block.output_mask(mask)       # [B, F_i, D], [B, F_i]
    return x, mask, None

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size, "blocks": self.num_blocks,
            "time_strides": self.time_strides, "normalize": self.normalize}


@SERIALIZABLE
class ClassLabelModality(CheckpointedCollections, keras.layers.Layer):
  """The categorical exit flow (Xception's, with T2T's widths), from the body to class logits:

    x = the body output, reshaped back to its grid [B, h, w, D] for image inputs (rank 2)
    x = ConvStep_{2.5D}(ConvStep_{2D}(ConvRes_{1.25D, stride 2}(x)))
    ClassLabelModalityOut(x) = Linear_C(GlobalAveragePool(ReLU(x)))

  Sequence inputs (rank 1) use 1-D convolutions and pool over their real positions only.

  Args:
    hidden_size: D.
    num_classes: C.
    rank: 2 for image inputs, 1 for sequence inputs.

  Example:
    >>> net = ClassLabelModality(64, num_classes=10, rank=2)
    >>> net.top(tf.ones([2, 64, 64]), grid=(8, 8)).shape
    TensorShape([2, 10])
  """

  def __init__(self, hidden_size: int, num_classes: int, rank: int = 2, **kwargs):
    super().__init__(**kwargs)
    if rank not in (1, 2):
      raise ValueError(f"Expected `rank` in (1, 2). Received: rank={rank}")
    self.hidden_size, self.num_classes, self.rank = hidden_size, num_classes, rank
    d = hidden_size
    sep = keras.layers.SeparableConv1D if rank == 1 else keras.layers.SeparableConv2D
    self.exit = ConvRes(d * 5 // 4, strides=2, rank=rank, name="exit_conv_res")
    self.convs = [sep(width, 3, padding="same", name=f"sep_conv_{i}")
                  for i, width in enumerate((2 * d, d * 5 // 2))]
    self.norms = [keras.layers.LayerNormalization(epsilon=1e-6, name=f"norm_{i}") for i in range(2)]
    self.logits = keras.layers.Dense(num_classes, name="logits", dtype="float32")

  def top(self, body_output, mask=None, grid=None):
    if self.rank == 2:
      x = tf.reshape(body_output, [-1, grid[0], grid[1], self.hidden_size])  # [B, h, w, D]
      x = self.exit(x)                                                     # [B, h/2, w/2, 5D/4]
      for conv, norm in zip(self.convs, self.norms):
        x = norm(conv(tf.nn.relu(x)))                                      # [B, h/2, w/2, 2D | 5D/2]
      return self.logits(tf.reduce_mean(tf.nn.relu(x), axis=[1, 2]))       # [B, C]
    if mask is None:
      mask = tf.ones(tf.shape(body_output)[:2], tf.bool)                   # [B, T]
    x, mask = self.exit(body_output, padding_mask=mask), self.exit.output_mask(mask)  # [B, T/2, 5D/4]
    weights = tf.cast(mask, x.dtype)[:, :, None]                           # [B, T/2, 1]
    for conv, norm in zip(self.convs, self.norms):
      x = norm(conv(tf.nn.relu(x * weights)))                              # [B, T/2, 2D | 5D/2]
    pooled = tf.reduce_sum(tf.nn.relu(x) * weights, 1) / tf.maximum(tf.reduce_sum(weights, 1), 1.0)
    return self.logits(pooled)                                             # [B, C]

  def loss(self, logits, targets, label_smoothing: float):
    labels = tf.reshape(targets, [-1])                                     # [B]
    return smoothed_cross_entropy(logits, labels, tf.ones(tf.shape(labels), tf.float32),
                                  label_smoothing)

  def get_config(self):
    return {**super().get_config(), "hidden_size": self.hidden_size,
            "num_classes": self.num_classes, "rank": self.rank}


def modality_key(modality: str, problem: dict) -> str:
  """Problems with equal keys share one modality net: "symbol", "image", "audio", and one
  class-label net per (number of classes, input rank), e.g. "class_label_10" for 10 classes of
  images, "class_label_10_seq" for 10 classes of sequences."""
  if modality != "class_label":
    return modality
  suffix = "" if problem["input_modality"] == "image" else "_seq"
  return f"class_label_{problem['num_classes']}{suffix}"


def _class_label(hp: HParams, problem: dict) -> ClassLabelModality:
  rank = 2 if problem["input_modality"] == "image" else 1
  return ClassLabelModality(hp.hidden_size, problem["num_classes"], rank,
                            name=modality_key("class_label", problem))


MODALITY_NETS.add("symbol", lambda hp, problem: SymbolModality(hp.vocab_size, hp.hidden_size,
                                                               name="symbol"))
MODALITY_NETS.add("image", lambda hp, problem: ImageModality(hp.hidden_size, hp.image_size,
                                                             name="image"))
MODALITY_NETS.add("audio", lambda hp, problem: AudioModality(
    hp.hidden_size, hp.audio_blocks, hp.audio_time_strides, hp.audio_normalize, name="audio"))
MODALITY_NETS.add("class_label", _class_label)
