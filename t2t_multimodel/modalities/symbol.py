"""Text in the shared subword vocabulary: every text input and target of every problem.

  stored       int64 ids + EOS, and the text itself, untouched, as "<role>_text" (bytes), so that
               evaluation scores against the whole reference whatever length training cuts to
  preprocessed int32 [T]. Inputs longer than max_input_length are cut keeping their final EOS.
               Targets longer than max_target_length are cut and get no EOS: the model learns the
               cut tree or verse as an unfinished prefix, never to stop in its middle.
  net          one embedding for every text input and target, scaled by sqrt(D); out, an untied
               linear layer to the vocabulary: int [B, T] -> [B, T, D]; [B, T, D] -> [B, T, V]
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf

from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.layers.conv import SERIALIZABLE
from t2t_multimodel.layers.tracking import CheckpointedCollections
from t2t_multimodel.modalities.base import Layout, Modality, int64_feature, smoothed_cross_entropy
from t2t_multimodel.vocab import EOS_ID, PAD_ID, SubwordVocab


@SERIALIZABLE
class SymbolModality(CheckpointedCollections, keras.layers.Layer):
  """The symbol modality's net (module docstring).

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


class Symbol(Modality):
  name = "symbol"
  client = "text"
  client_description = "a line of text"
  text = True
  autoregressive = True

  def encode(self, text: str, vocab: SubwordVocab | None) -> tf.train.Feature:
    if vocab is None:
      raise ValueError("A symbol feature needs the shared vocabulary.")
    return int64_feature(vocab.encode(text) + [EOS_ID])

  def spec(self):
    return tf.io.RaggedFeature(tf.int64)

  def layout(self, hp: HParams, role: str) -> Layout:
    if role == "targets":  # a cut target is an unfinished prefix: no EOS in its middle
      max_length = hp.max_target_length
      return Layout(lambda ids: tf.cast(ids, tf.int32)[:max_length], hp.length_bucket_step, [None],
                    max_length)
    max_length = hp.max_input_length

    def truncate_keep_eos(ids: tf.Tensor) -> tf.Tensor:
      ids = tf.cast(ids, tf.int32)                                       # [T]
      length = tf.shape(ids)[0]
      keep = tf.minimum(length, max_length) - 1
      return tf.concat([ids[:keep], ids[length - 1:]], axis=0)           # [min(T, max)], ends in EOS

    return Layout(truncate_keep_eos, hp.length_bucket_step, [None], max_length)

  def net(self, hp: HParams, signature: dict, source: Modality) -> SymbolModality:
    return SymbolModality(hp.vocab_size, hp.hidden_size, name=self.net_key(signature, source))

  def dummy(self, hp: HParams, batch_size: int, role: str) -> tf.Tensor:
    return tf.ones([batch_size, 8 if role == "inputs" else 4], tf.int32)

  def read(self, line: str, vocab: SubwordVocab | None) -> tf.Tensor:
    return tf.constant(vocab.encode(line) + [EOS_ID], tf.int64)           # [T]

  def to_text(self, ids: np.ndarray, vocab: SubwordVocab | None, class_names: Sequence[str] = ()) -> str:
    return vocab.decode(ids.tolist())

  def describe(self, ids: np.ndarray, vocab: SubwordVocab | None) -> str:
    return vocab.decode(ids.tolist())

  def serve(self, line: tf.Tensor, tokenizer) -> tf.Tensor:
    ids = tf.cast(tokenizer.tokenize(line), tf.int64)                    # [T], no EOS
    return tf.concat([ids, tf.constant([EOS_ID], tf.int64)], axis=0)     # [T + 1], as `read`

  def serve_text(self, ids: tf.Tensor, tokenizer, class_names: Sequence[str] = ()) -> tf.Tensor:
    keep = tf.logical_and(ids > EOS_ID, ids < tf.cast(tokenizer.vocab_size(), ids.dtype))
    return tokenizer.detokenize(tf.ragged.boolean_mask(ids, keep))       # [N]


SYMBOL = Symbol()
