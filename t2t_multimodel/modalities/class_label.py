"""Class labels, as targets: the Xception-like exit flow from the encoder output to class logits.

  stored       int -> int64 [1]
  preprocessed int32 [1]
  net          top: [B, T, D] (+ the input's grid) -> logits [B, C]; one net per (number of classes,
               whether the input has a grid), e.g. "class_label_10" for 10 classes of images,
               "class_label_10_seq" for 10 classes of sequences
"""

from __future__ import annotations

from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.layers.conv import ConvRes, SERIALIZABLE
from t2t_multimodel.layers.tracking import CheckpointedCollections
from t2t_multimodel.modalities.base import Layout, Modality, int64_feature, smoothed_cross_entropy
from t2t_multimodel.vocab import SubwordVocab


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
    rank: 2 for inputs with a grid (images), 1 for sequence inputs.

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


class ClassLabel(Modality):
  name = "class_label"

  def encode(self, label: int, vocab: SubwordVocab | None) -> tf.train.Feature:
    return int64_feature([label])

  def spec(self):
    return tf.io.FixedLenFeature([1], tf.int64)

  def layout(self, hp: HParams, role: str) -> Layout:
    def label(value: tf.Tensor) -> tf.Tensor:
      return tf.ensure_shape(tf.cast(value, tf.int32), [1])             # [1]

    return Layout(label, None, [1], None)

  def body_positions(self, hp: HParams, length: int) -> int:
    return 1

  def net_key(self, signature: dict, source: Modality) -> str:
    return f"{self.name}_{signature['num_classes']}{'' if source.grid else '_seq'}"

  def net(self, hp: HParams, signature: dict, source: Modality) -> ClassLabelModality:
    return ClassLabelModality(hp.hidden_size, signature["num_classes"], 2 if source.grid else 1,
                              name=self.net_key(signature, source))

  def dummy(self, hp: HParams, batch_size: int, role: str) -> tf.Tensor:
    return tf.zeros([batch_size, 1], tf.int32)

  def to_text(self, label: np.ndarray, vocab: SubwordVocab | None, class_names: Sequence[str] = ()) -> str:
    label = int(np.reshape(label, [-1])[0])
    return class_names[label] if class_names else str(label)

  def serve_text(self, labels: tf.Tensor, tokenizer, class_names: Sequence[str] = ()) -> tf.Tensor:
    labels = tf.reshape(labels, [-1])                                    # [N]
    if not class_names:
      return tf.strings.as_string(labels)
    return tf.gather(tf.constant(list(class_names)), labels)             # [N]

  def check(self, problem, role: str) -> None:
    if role == "targets" and problem.num_classes < 2:
      raise ValueError(f"Problem {problem.name}: a class_label target needs num_classes >= 2.")


CLASS_LABEL = ClassLabel()
