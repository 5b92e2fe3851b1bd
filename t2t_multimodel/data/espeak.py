"""Text to speech with eSpeak NG through ctypes, for the embedded speech problem.

The `espeakng-loader` wheel bundles `libespeak-ng.so` and its `espeak-ng-data`,
so no root and no system package are needed. The library is initialised once
per process in synchronous mode (`AUDIO_OUTPUT_SYNCHRONOUS`): `espeak_Synth`
returns only when the whole text is spoken, and a synthesis callback collects
the int16 samples (22,050 Hz) meanwhile. eSpeak NG keeps global state, so every
call holds one process-wide lock, sets the voice, speed and pitch anew and
reseeds eSpeak's random generator (used for breathy voices).

Reproducibility: a fresh process that speaks the same texts in the same order
gets the same samples, bit for bit. Within a process a rendering also depends a
little on what was spoken before: eSpeak NG keeps its pitch-flutter phase and
gain control in function-level statics that no API call resets. Re-speaking a
text gives the same speech with a slightly different pitch jitter: lengths
within a few samples, frame-aligned log-mel features within ~0.1-0.3 (mean
absolute difference).

Example:
  >>> waveform = espeak.synthesize("In the beginning.", espeak.Voice("en-gb-x-rp", rate=150))
  >>> waveform.dtype, waveform.ndim                                    # float32 [S] at 16 kHz
  (dtype('float32'), 1)
"""

from __future__ import annotations

import ctypes
import dataclasses
import threading

import numpy as np

from t2t_multimodel.modalities import spectrogram
from t2t_multimodel.problem import MissingDataError

# speak_lib.h constants.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_EE_OK = 0
_RATE, _PITCH = 1, 3
_RAND_SEED = 1  # eSpeak NG draws random numbers (e.g. for noise); reseeded before every text

MIN_RATE, MAX_RATE = 80, 450  # words per minute that eSpeak NG accepts.

_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                  ctypes.c_void_p)


class EspeakUnavailableError(MissingDataError):
  """eSpeak NG (the `espeakng-loader` wheel) cannot be loaded or initialised."""


@dataclasses.dataclass(frozen=True)
class Voice:
  """How an utterance is spoken.

  Args:
    name: an eSpeak NG voice, optionally with a variant: "en-us", "en-gb-x-rp+f2".
    rate: speed in words per minute (eSpeak's default is 175).
    pitch: base pitch, 0..100 (default 50).

  Example:
    >>> Voice("en-029", rate=140, pitch=45)
  """

  name: str = "en-us"
  rate: int = 175
  pitch: int = 50

  def __post_init__(self):
    if not MIN_RATE <= self.rate <= MAX_RATE:
      raise ValueError(f"Expected {MIN_RATE} <= `rate` <= {MAX_RATE}. Received: rate={self.rate}")
    if not 0 <= self.pitch <= 100:
      raise ValueError(f"Expected 0 <= `pitch` <= 100. Received: pitch={self.pitch}")


class _Engine:
  """The process-wide eSpeak NG library: loaded and initialised once (see `_engine`)."""

  def __init__(self):
    try:
      import espeakng_loader
      self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
      data_path = espeakng_loader.get_data_path()
    except (ImportError, OSError, RuntimeError) as e:
      raise EspeakUnavailableError(
          f"eSpeak NG could not be loaded ({' '.join(str(e).split())}); "
          "install the `espeakng-loader` wheel: pip install 'espeakng-loader>=0.2.4,<0.3'") from e
    self._declare()
    self.sample_rate = self.lib.espeak_Initialize(
        _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode(), _INITIALIZE_DONT_EXIT)
    if self.sample_rate <= 0:
      raise EspeakUnavailableError(
          f"eSpeak NG failed to initialise with data path {data_path}; "
          "reinstall the `espeakng-loader` wheel")
    self._chunks: list[np.ndarray] = []
    self._callback = _SynthCallback(self._collect)  # kept alive as long as the engine
    self.lib.espeak_SetSynthCallback(self._callback)

  def _declare(self) -> None:
    lib = self.lib
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                 ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]

  def _collect(self, wav, num_samples: int, _events) -> int:
    if num_samples > 0:
      self._chunks.append(np.ctypeslib.as_array(wav, shape=(num_samples,)).copy())
    return 0  # 0 = go on

  def speak(self, text: str, voice: Voice) -> np.ndarray:
    """Text -> int16 samples [S] at `self.sample_rate`. The caller holds `_LOCK`."""
    if not text.strip():
      raise ValueError(f"Expected a non-blank `text` to speak. Received: text={text!r}")
    if self.lib.espeak_SetVoiceByName(voice.name.encode()) != _EE_OK:
      raise ValueError(f"Unknown eSpeak NG voice. Received: name={voice.name!r}")
    self.lib.espeak_SetParameter(_RATE, voice.rate, 0)
    self.lib.espeak_SetParameter(_PITCH, voice.pitch, 0)
    self.lib.espeak_ng_SetRandSeed(_RAND_SEED)
    self._chunks = []
    encoded = text.encode("utf-8") + b"\0"
    status = self.lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8,
                                   None, None)
    if status != _EE_OK:
      raise RuntimeError(f"espeak_Synth failed with status {status} on text {text[:60]!r}")
    chunks, self._chunks = self._chunks, []
    return np.concatenate(chunks) if chunks else np.zeros([0], np.int16)


_LOCK = threading.Lock()
_ENGINE: _Engine | None = None


def _engine() -> _Engine:
  """The one engine of this process; created on first use. Call with `_LOCK` held."""
  global _ENGINE
  if _ENGINE is None:
    _ENGINE = _Engine()
  return _ENGINE


def ensure_available() -> None:
  """Loads and initialises eSpeak NG now; raises EspeakUnavailableError (one line) if it cannot."""
  with _LOCK:
    _engine()


def synthesize_native(text: str, voice: Voice = Voice()) -> tuple[np.ndarray, int]:
  """Text -> (int16 samples [S], sample rate): eSpeak NG's own output (22,050 Hz)."""
  with _LOCK:
    engine = _engine()
    return engine.speak(text, voice), engine.sample_rate


def synthesize(text: str, voice: Voice = Voice(),
               sample_rate: int = spectrogram.SAMPLE_RATE) -> np.ndarray:
  """Text -> float32 waveform [S] in [-1, 1] at `sample_rate` (16 kHz by default)."""
  samples, native_rate = synthesize_native(text, voice)
  waveform = spectrogram.resample(samples.astype(np.float32) / 32768.0, native_rate, sample_rate)  # [S]
  return np.clip(waveform, -1.0, 1.0)
