"""Speech, as inputs: log-mel frames (spectrogram.py) through strided 1-D ConvRes blocks.

  stored       float [frames, 80] as float16 bytes
  preprocessed float32 [F, 80], F cut to max_input_length * 2**audio_time_strides; the length axis
               is padded to a multiple of length_bucket_step * 2**audio_time_strides frames, so the
               strided net sees a multiple of the step too
  net          float [B, F, 80] -> [B, ceil(F / 2^s), D]
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.layers.conv import ConvRes, SERIALIZABLE
from t2t_multimodel.layers.tracking import CheckpointedCollections
from t2t_multimodel.modalities import spectrogram
from t2t_multimodel.modalities.base import Layout, Modality, bytes_feature
from t2t_multimodel.vocab import SubwordVocab


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


class Audio(Modality):
  name = "audio"
  timed = True
  client = "file"
  accept = "audio/wav,.wav"
  client_description = "a 16-bit PCM WAV file"

  def encode(self, features: np.ndarray, vocab: SubwordVocab | None) -> tf.train.Feature:
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[1] != spectrogram.NUM_MEL_BINS:
      raise ValueError(f"An audio feature must be [frames, {spectrogram.NUM_MEL_BINS}]. "
                       f"Received: {features.shape}")
    return bytes_feature(features.astype(np.float16).tobytes())

  def spec(self):
    return tf.io.FixedLenFeature([], tf.string)

  def decode(self, raw: tf.Tensor) -> tf.Tensor:
    flat = tf.io.decode_raw(raw, tf.float16)                             # [frames * mel]
    return tf.cast(tf.reshape(flat, [-1, spectrogram.NUM_MEL_BINS]), tf.float32)  # [frames, mel]

  def layout(self, hp: HParams, role: str) -> Layout:
    max_frames = hp.max_input_length * 2 ** hp.audio_time_strides

    def cut(frames: tf.Tensor) -> tf.Tensor:
      return tf.ensure_shape(frames[:max_frames], [None, spectrogram.NUM_MEL_BINS])  # [F, 80]

    multiple = hp.length_bucket_step * 2 ** hp.audio_time_strides
    return Layout(cut, multiple, [None, spectrogram.NUM_MEL_BINS], max_frames)

  def body_positions(self, hp: HParams, length: int) -> int:
    return math.ceil(length / 2 ** hp.audio_time_strides)                # strided frames

  def net(self, hp: HParams, signature: dict, source: Modality) -> AudioModality:
    return AudioModality(hp.hidden_size, hp.audio_blocks, hp.audio_time_strides, hp.audio_normalize,
                         name=self.net_key(signature, source))

  def dummy(self, hp: HParams, batch_size: int, role: str) -> tf.Tensor:
    return tf.ones([batch_size, 8 * 2 ** hp.audio_time_strides, spectrogram.NUM_MEL_BINS])

  def read(self, path: str, vocab: SubwordVocab | None) -> tf.Tensor:
    return tf.constant(spectrogram.read_features(path), tf.float32)      # WAV or SPHERE -> [F, 80]

  def serve(self, data: tf.Tensor, tokenizer) -> tf.Tensor:
    return spectrogram.wav_features(data)                                # 16-bit WAV -> [F, 80]

  def describe(self, frames: np.ndarray, vocab: SubwordVocab | None) -> str:
    real = int(np.any(frames != 0, axis=-1).sum())
    return f"[audio, {real} frames of {frames.shape[-1]} mel bins]"


AUDIO = Audio()
