"""Log-mel spectrogram features for the speech problems (tf.signal)."""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

SAMPLE_RATE = 16_000
NUM_MEL_BINS = 80
FRAME_LENGTH = 400   # 25 ms
FRAME_STEP = 160     # 10 ms
FFT_LENGTH = 512


def resample(waveform: np.ndarray, rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
  """Polyphase (band-limited) resampling of a 1-D waveform to `target_rate`."""
  if rate == target_rate:
    return waveform.astype(np.float32)
  from scipy import signal  # scikit-learn's dependency; only needed here.
  g = np.gcd(rate, target_rate)
  return signal.resample_poly(waveform.astype(np.float32), target_rate // g, rate // g).astype(np.float32)


@functools.lru_cache(maxsize=None)
def _mel_matrix(sample_rate: int) -> tf.Tensor:
  return tf.signal.linear_to_mel_weight_matrix(
      NUM_MEL_BINS, FFT_LENGTH // 2 + 1, sample_rate, 20.0, sample_rate / 2)       # [257, M]


@tf.function(input_signature=[tf.TensorSpec([None], tf.float32),
                              tf.TensorSpec([FFT_LENGTH // 2 + 1, NUM_MEL_BINS], tf.float32)])
def _log_mel(x: tf.Tensor, mel: tf.Tensor) -> tf.Tensor:
  stft = tf.signal.stft(x, FRAME_LENGTH, FRAME_STEP, FFT_LENGTH, pad_end=True)   # [F, 257]
  return tf.math.log(tf.matmul(tf.abs(stft) ** 2, mel) + 1e-6)                  # [F, M]


def log_mel_spectrogram(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """Float waveform in [-1, 1] at `sample_rate` -> log-mel features [frames, NUM_MEL_BINS]."""
  return _log_mel(tf.convert_to_tensor(waveform, tf.float32), _mel_matrix(sample_rate)).numpy()
