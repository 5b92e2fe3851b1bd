"""Audio for the speech problems and the decoder: WAV and NIST SPHERE files read to waveforms,
resampled to 16 kHz, turned into log-mel spectrogram features (tf.signal).

Two resamplers: mm-datagen's is polyphase (scipy, `resample`); the decoder's and a SavedModel's
is band-limited FFT resampling in graph ops (`waveform_features`), so that mm-decoder and an
exported model (`wav_features`: WAV bytes in, no Python) compute the very same features.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf

from t2t_multimodel.errors import MissingDataError

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
def _mel_matrix(sample_rate: int) -> np.ndarray:
  with tf.init_scope():  # eager even when first asked inside a tf.function: a constant, not a graph tensor
    return tf.signal.linear_to_mel_weight_matrix(
        NUM_MEL_BINS, FFT_LENGTH // 2 + 1, sample_rate, 20.0, sample_rate / 2).numpy()  # [257, M]


@tf.function(input_signature=[tf.TensorSpec([None], tf.float32),
                              tf.TensorSpec([FFT_LENGTH // 2 + 1, NUM_MEL_BINS], tf.float32)])
def _log_mel(x: tf.Tensor, mel: tf.Tensor) -> tf.Tensor:
  stft = tf.signal.stft(x, FRAME_LENGTH, FRAME_STEP, FFT_LENGTH, pad_end=True)   # [F, 257]
  return tf.math.log(tf.matmul(tf.abs(stft) ** 2, mel) + 1e-6)                  # [F, M]


def _resample_fft(waveform: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
  """[S] at `rate` -> [round(S * 16k / rate)] at SAMPLE_RATE: the spectrum cut (or zero-padded)
  to the new length's bins, as scipy.signal.resample does; the identity at 16 kHz."""
  def resample():
    length = tf.shape(waveform)[0]
    new_length = tf.cast(tf.round(tf.cast(length, tf.float64) * SAMPLE_RATE /
                                  tf.cast(rate, tf.float64)), tf.int32)
    spectrum = tf.signal.rfft(waveform)                                       # [S // 2 + 1]
    bins = new_length // 2 + 1
    spectrum = tf.pad(spectrum[:bins], [[0, tf.maximum(bins - tf.shape(spectrum)[0], 0)]])
    scale = tf.cast(new_length, tf.float32) / tf.cast(length, tf.float32)
    return tf.signal.irfft(spectrum, fft_length=[new_length]) * scale         # [S']
  return tf.cond(tf.equal(rate, SAMPLE_RATE), lambda: waveform, resample)


@tf.function(input_signature=[tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.int32)])
def waveform_features(waveform: tf.Tensor, rate: tf.Tensor) -> tf.Tensor:
  """A mono waveform [S] in [-1, 1] at any `rate` -> log-mel features [frames, 80] of it at 16 kHz
  (FFT resampling), in graph ops only."""
  return _log_mel(_resample_fft(waveform, rate), _mel_matrix(SAMPLE_RATE))      # [F, 80]


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def wav_features(data: tf.Tensor) -> tf.Tensor:
  """The bytes of a 16-bit PCM WAV file (any rate, mono or stereo) -> log-mel features [F, 80],
  the channels averaged, in graph ops only (tf.audio.decode_wav reads 16-bit PCM only)."""
  audio, rate = tf.audio.decode_wav(data)                                       # [S, C], []
  return waveform_features(tf.reduce_mean(audio, axis=1), rate)


def log_mel_spectrogram(waveform: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
  """Float waveform in [-1, 1] at `sample_rate` -> log-mel features [frames, NUM_MEL_BINS]."""
  return _log_mel(tf.convert_to_tensor(waveform, tf.float32), _mel_matrix(sample_rate)).numpy()


# --- Audio files. ----------------------------------------------------------------------------------


class UnsupportedAudioError(MissingDataError):
  """An audio file that this reader cannot decode (e.g. shorten-compressed SPHERE)."""


def read_sphere_header(path: str) -> tuple[dict[str, str | int | float], int]:
  """(fields, header size in bytes) of a NIST SPHERE file."""
  with open(path, "rb") as f:
    head = f.read(16)
    if not head.startswith(b"NIST_1A"):
      raise UnsupportedAudioError(f"{path} is not a NIST SPHERE file (no NIST_1A header)")
    size = int(head[8:16])
    text = (head + f.read(size - 16)).decode("ascii", "replace")
  fields: dict[str, str | int | float] = {}
  for line in text.splitlines()[2:]:
    parts = line.split(None, 2)
    if not parts or parts[0] == "end_head":
      break
    if len(parts) == 3:
      key, kind, value = parts
      fields[key] = int(value) if kind == "-i" else float(value) if kind == "-r" else value.strip()
  return fields, size


def check_sphere(path: str, fields: dict | None = None) -> None:
  """Raises UnsupportedAudioError unless `path` is SPHERE this reader decodes (16-bit PCM).
  `fields`: its header, if read already."""
  fields = read_sphere_header(path)[0] if fields is None else fields
  coding = str(fields.get("sample_coding", "pcm"))
  if "shorten" in coding:
    wav = os.path.splitext(path)[0] + ".wav"
    raise UnsupportedAudioError(
        f"{path} is shorten-compressed NIST SPHERE (sample_coding {coding}): convert it to WAV with "
        f"sph2pipe first (sph2pipe -f wav {path} {wav}); a .wav beside it is used")
  if coding != "pcm" or fields.get("sample_n_bytes", 2) != 2 or "sample_rate" not in fields:
    raise UnsupportedAudioError(
        f"{path}: only 16-bit PCM SPHERE is read. Received: sample_coding={coding}, "
        f"sample_n_bytes={fields.get('sample_n_bytes')}, sample_rate={fields.get('sample_rate')}")


def read_sphere(path: str) -> tuple[np.ndarray, int]:
  """(float32 waveform [S] in [-1, 1], sample rate) of an uncompressed 16-bit PCM SPHERE file."""
  fields, size = read_sphere_header(path)
  check_sphere(path, fields)
  dtype = ">i2" if fields.get("sample_byte_format") == "10" else "<i2"
  with open(path, "rb") as f:
    f.seek(size)
    samples = np.frombuffer(f.read(), dtype=dtype)
  channels = int(fields.get("channel_count", 1))
  samples = samples[:len(samples) // channels * channels].reshape(-1, channels)   # [S, C]
  return (samples.mean(axis=1) / 32768.0).astype(np.float32), int(fields["sample_rate"])


def read_wav(path: str) -> tuple[np.ndarray, int]:
  """(float32 waveform [S] in [-1, 1], sample rate) of a RIFF WAV file (PCM 8/16/24/32-bit or float)."""
  from scipy.io import wavfile

  rate, samples = wavfile.read(path)
  if samples.dtype == np.uint8:
    samples = (samples.astype(np.float32) - 128.0) / 128.0
  elif np.issubdtype(samples.dtype, np.integer):
    samples = samples.astype(np.float32) / float(-np.iinfo(samples.dtype).min)
  samples = samples.reshape(len(samples), -1)                          # [S, C]
  return samples.mean(axis=1).astype(np.float32), int(rate)


def featurize_file(path: str) -> np.ndarray:
  """An audio file -> log-mel features [frames, 80] of its 16 kHz waveform (datagen's polyphase
  resampling)."""
  waveform, rate = read_wav(path) if path.lower().endswith(".wav") else read_sphere(path)
  return log_mel_spectrogram(resample(waveform, rate))    # [frames, 80]


def read_features(path: str) -> np.ndarray:
  """An audio file -> log-mel features [frames, 80] as a served model computes them
  (`waveform_features`): the decoder's reader, so mm-decoder and mm-export agree."""
  waveform, rate = read_wav(path) if path.lower().endswith(".wav") else read_sphere(path)
  return waveform_features(tf.constant(waveform, tf.float32), tf.constant(rate, tf.int32)).numpy()
