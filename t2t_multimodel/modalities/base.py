"""What a modality is: everything the engine does with one kind of value, in one object.

A problem names the modality of its inputs and of its targets ("symbol", "image", ...); the
engine looks the `Modality` up in `MODALITIES` and asks it, and never tests a modality's name:

  storage     `encode` a raw sample's value into a tf.train.Feature (mm-datagen), `spec` and
              `decode` it back (the input pipeline);
  batching    `layout`: the preprocessing of a role and how its length axis is padded;
              `body_positions`: the positions of the shared body one example takes (batches by
              tokens);
  the model   `net`: the Keras layer with `bottom` (raw batch -> (sequence [B, T, D], mask [B, T],
              grid)) and, for targets, `top` (body output -> logits) and `loss`; `net_key`: which
              problems share one net; `dummy`: a tiny batch, to create every weight;
  inference   `read`: the decoder's raw input (a line of text, a file path) -> a value;
  evaluation  `to_text`: an output or reference -> text (a label's name, a decoded sentence);
              `describe`: an input, as a line of a report.
"""

from __future__ import annotations

from typing import Any, Callable, NamedTuple, Sequence

import keras
import numpy as np
import tensorflow as tf

from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.vocab import SubwordVocab


class Layout(NamedTuple):
  """One role's preprocessing, with its sizes resolved from the hparams.

  preprocess: a decoded value -> the model's value (traced by tf.data).
  multiple: the length axis (axis 0) is padded to a multiple of this; None: a fixed shape.
  shape: the per-example shape, None for the length axis.
  max_length: the longest length axis after preprocessing (None: a fixed shape).
  """

  preprocess: Callable[[tf.Tensor], tf.Tensor]
  multiple: int | None
  shape: list[int | None]
  max_length: int | None


def int64_feature(values) -> tf.train.Feature:
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def bytes_feature(value: bytes) -> tf.train.Feature:
  return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def smoothed_cross_entropy(logits, labels, weights, label_smoothing: float):
  """Mean label-smoothed cross-entropy over weighted positions, and the weight sum."""
  num_classes = logits.shape[-1]
  onehot = tf.one_hot(labels, num_classes)
  if label_smoothing:
    onehot = onehot * (1.0 - label_smoothing) + label_smoothing / num_classes
  xent = tf.nn.softmax_cross_entropy_with_logits(onehot, tf.cast(logits, tf.float32))
  total = tf.reduce_sum(weights)
  return tf.reduce_sum(xent * weights) / tf.maximum(total, 1.0), total


class Modality:
  """One kind of value a problem's inputs or targets hold (see the module docstring).

  Subclasses set `name` and the flags, and implement the methods of the roles they can play.

  Attributes:
    name: what `Problem.input_modality` / `target_modality` say.
    text: values are text of the shared vocabulary: the vocabulary is built from them, shards
      also keep the raw text ("<role>_text"), and text metrics score it.
    autoregressive: as a target, produced token by token by the target side (mixer and decoder,
      with incremental decoding); otherwise in one shot from the encoder output.
    grid: as an input, the bottom returns a 2-D grid (h, w) that a top may fold the body back to.
    timed: as an input, the bottom's positions run in time order (frames of audio), so text targets
      can be aligned to them monotonically: the auxiliary CTC loss (`audio_ctc_weight`) applies.
    client: what a client of a served model sends as an input: "text" (a line) or "file" (a
      file's bytes); "" if it cannot be served as an input.
    accept: the file types a web page offers to upload (an HTML `accept` list).
    client_description: that input in words, for messages ("an image file (PNG, JPEG, ...)").
  """

  name: str = ""
  text: bool = False
  autoregressive: bool = False
  grid: bool = False
  timed: bool = False
  client: str = ""
  accept: str = ""
  client_description: str = ""

  # --- Storage. ----------------------------------------------------------------------------------

  def encode(self, value: Any, vocab: SubwordVocab | None) -> tf.train.Feature:
    """A raw sample's value -> the feature stored in the shards."""
    raise NotImplementedError(f"{type(self).__name__} must implement encode")

  def spec(self):
    """The tf.io parsing spec of the stored feature."""
    raise NotImplementedError(f"{type(self).__name__} must implement spec")

  def decode(self, stored: tf.Tensor) -> tf.Tensor:
    """The parsed feature -> the value preprocessing starts from (traced by tf.data)."""
    return stored

  # --- Batching. ---------------------------------------------------------------------------------

  def layout(self, hp: HParams, role: str) -> Layout:
    """The preprocessing of `role` ("inputs" or "targets") under `hp`."""
    raise NotImplementedError(f"{type(self).__name__} must implement layout")

  def body_positions(self, hp: HParams, length: int) -> int:
    """Positions of the shared body one example takes; `length` is its padded length axis."""
    return length

  def decoded_bytes(self, hp: HParams) -> int:
    """Memory one preprocessed example takes beyond 4 times its stored size (cache estimates)."""
    return 0

  # --- The model. --------------------------------------------------------------------------------

  def net_key(self, signature: dict, source: "Modality") -> str:
    """Problems whose keys are equal share one net (and its weights); also the net's name.
    `source` is the problem's input modality (a target's net may depend on it)."""
    return self.name

  def net(self, hp: HParams, signature: dict, source: "Modality") -> keras.layers.Layer:
    """A new modality net for a problem's signature (`Problem.signature()`) whose input modality
    is `source`."""
    raise NotImplementedError(f"{type(self).__name__} must implement net")

  def dummy(self, hp: HParams, batch_size: int, role: str) -> tf.Tensor:
    """A small all-valid batch of `role`, to create every weight."""
    raise NotImplementedError(f"{type(self).__name__} must implement dummy")

  # --- Inference, evaluation and reports. --------------------------------------------------------

  def read(self, item: str, vocab: SubwordVocab | None) -> tf.Tensor:
    """The decoder's raw input (a line of text or a file path) -> the value `decode` gives."""
    raise ValueError(f"The decoder cannot read {self.name} inputs.")

  def to_text(self, value: np.ndarray, vocab: SubwordVocab | None,
              class_names: Sequence[str] = ()) -> str:
    """A model output or a stored target (one example) -> text."""
    raise NotImplementedError(f"{type(self).__name__} must implement to_text")

  # --- Serving: graph ops only, so that a SavedModel needs neither Python nor this package. ------

  def serve(self, raw: tf.Tensor, tokenizer) -> tf.Tensor:
    """What a client sends (one scalar string: a line of text, or a file's bytes) -> the value
    `read` gives for the same input. `tokenizer`: tensorflow-text's SentencePiece tokenizer of the
    run's vocabulary (None without one)."""
    raise ValueError(f"{self.name} inputs cannot be served.")

  def serve_text(self, outputs: tf.Tensor, tokenizer, class_names: Sequence[str] = ()) -> tf.Tensor:
    """A batch of model outputs (ids [N, L] or labels [N]) -> strings [N], as `to_text` gives."""
    raise ValueError(f"{self.name} outputs cannot be served.")

  def describe(self, value: np.ndarray, vocab: SubwordVocab | None) -> str:
    """One preprocessed input, as a short line for reports."""
    return f"[{self.name} {list(value.shape)}]"

  def check(self, problem, role: str) -> None:
    """Raises ValueError if `problem` cannot use this modality as its `role`."""

  def __repr__(self) -> str:
    return f"<Modality {self.name}>"
