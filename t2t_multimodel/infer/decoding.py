"""Inference with a trained MultiModel: raw inputs -> features, greedy/beam decoding, outputs.

Incremental decoding goes through the model's cache (`encode` once, `init_cache`, then one
`decode_step` per token), so a step costs the same however long the output already is.
`greedy_recompute` is the slow reference that reruns the whole model for every token.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import tensorflow as tf

from t2t_multimodel import infer, modalities
from t2t_multimodel.data import inputs
from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.infer.beam_search import beam_search, greedy_search
from t2t_multimodel.problem import Problem
from t2t_multimodel.vocab import EOS_ID, SubwordVocab


def prepare_inputs(problem: Problem, hp: HParams, vocab: SubwordVocab | None,
                   items: Sequence[str]) -> tf.Tensor:
  """Text lines or file paths (images, audio) -> a padded input batch (`Modality.read`).

  The same per-modality preprocessing as training (inputs.layouts): truncation keeping EOS,
  image fitting, frame cutting. Lines longer than the model's limit are cut with a warning.
  """
  layout = inputs.layouts(problem, hp)["inputs"]
  modality = modalities.of(problem, "inputs")
  values = []
  for item in items:
    raw = modality.read(item, vocab)
    value = layout.preprocess(raw)
    if layout.max_length is not None and raw.shape[0] > layout.max_length:
      logging.warning("Input cut to the model's limit of %d (was %d): %.60s",
                      layout.max_length, raw.shape[0], item)
    values.append(value)
  if layout.multiple is None:
    return tf.stack(values)                                                       # [B, ...]
  longest = max(int(v.shape[0]) for v in values)
  length = -(-longest // layout.multiple) * layout.multiple
  padded = [tf.pad(v, [[0, length - v.shape[0]]] + [[0, 0]] * (v.shape.rank - 1)) for v in values]
  return tf.stack(padded)                                                         # [B, T, ...]


def decode_ids(model, problem: str, input_batch: tf.Tensor, max_length: int, beam_size: int = 1,
               alpha: float = 0.6, extra_length: int | None = infer.EXTRA_LENGTH) -> tf.Tensor:
  """Incremental greedy (beam_size 1) or beam search: ids [B, max_length], 0 after EOS.

  Text inputs [B, T] decode at most T + extra_length tokens (T2T's decode length; None: no
  limit but max_length), which stops a looping output long before max_length. Images and audio
  decode up to max_length.
  """
  decode_length = None
  if input_batch.dtype.is_integer and extra_length is not None:
    decode_length = tf.shape(input_batch)[1] + extra_length
  state = model.encode({"inputs": input_batch}, problem)
  nest = {"state": state, "cache": model.init_cache(state, max_length)}

  def step_fn(ids, step, nest):
    logits, cache = model.decode_step(nest["state"], nest["cache"], ids, step, problem)
    return logits, {"state": nest["state"], "cache": cache}

  batch_size = tf.shape(input_batch)[0]
  if beam_size <= 1:
    return greedy_search(step_fn, nest, batch_size, max_length, eos_id=EOS_ID, decode_length=decode_length)
  ids, _ = beam_search(step_fn, nest, batch_size, beam_size, max_length, eos_id=EOS_ID, alpha=alpha,
                       decode_length=decode_length)
  return ids


def greedy_recompute(model, problem: str, input_batch: tf.Tensor, max_length: int) -> tf.Tensor:
  """The reference: greedy decoding that reruns the full model over the prefix for every token."""
  batch_size = tf.shape(input_batch)[0]
  targets = tf.zeros([batch_size, max_length], tf.int32)                          # [B, L]
  done = tf.zeros([batch_size], tf.bool)
  for step in tf.range(max_length):
    logits = model({"inputs": input_batch, "targets": targets}, problem=problem, training=False)
    next_ids = tf.argmax(logits[:, step], axis=-1, output_type=tf.int32)          # [B]
    next_ids = tf.where(done, 0, next_ids)
    targets += next_ids[:, None] * tf.one_hot(step, max_length, dtype=tf.int32)[None, :]
    done = tf.logical_or(done, tf.equal(next_ids, EOS_ID))
    if tf.reduce_all(done):
      break
  return targets


def classify(model, problem: str, input_batch: tf.Tensor) -> tf.Tensor:
  """Class-label problems: the arg-max label per example, int [B]."""
  dummy = tf.zeros([tf.shape(input_batch)[0], 1], tf.int32)
  logits = model({"inputs": input_batch, "targets": dummy}, problem=problem, training=False)
  return tf.argmax(logits, axis=-1, output_type=tf.int32)


class Decoder:
  """Turns raw inputs of one problem into output strings with a trained model.

  Args:
    model: a MultiModel.
    problem: the Problem to decode.
    hparams: the run's hparams (preprocessing limits).
    vocab: the run's vocabulary (None for problems without text).
    beam_size: 1 for greedy search.
    alpha: the beam search length penalty.
    max_length: the most tokens generated (default: hparams.max_target_length).

  Example:
    >>> decoder = Decoder(model, problem, hp, vocab, beam_size=4)
    >>> decoder.decode(["In the beginning God created the heavens and the earth."])
  """

  def __init__(self, model, problem: Problem, hparams: HParams, vocab: SubwordVocab | None,
               beam_size: int = 1, alpha: float = 0.6, max_length: int | None = None):
    self.model, self.problem, self.hparams, self.vocab = model, problem, hparams, vocab
    self.max_length = max_length or hparams.max_target_length
    if not modalities.of(problem, "targets").autoregressive:
      self._fn = tf.function(lambda x: classify(model, problem.name, x), reduce_retracing=True)
    else:
      self._fn = tf.function(
          lambda x: decode_ids(model, problem.name, x, self.max_length, beam_size, alpha),
          reduce_retracing=True)

  def decode(self, items: Sequence[str]) -> list[str]:
    """One output string per input line or path; empty inputs give empty outputs."""
    keep = [i for i, item in enumerate(items) if item.strip()]
    outputs = [""] * len(items)
    if not keep:
      return outputs
    batch = prepare_inputs(self.problem, self.hparams, self.vocab, [items[i] for i in keep])
    result = self._fn(batch).numpy()
    for i, row in zip(keep, result):
      outputs[i] = self._to_text(row)
    return outputs

  def _to_text(self, row: np.ndarray) -> str:
    return modalities.of(self.problem, "targets").to_text(row, self.vocab, self.problem.class_names)
