"""eSpeak NG through ctypes: plausible 16 kHz speech, voices and speeds that matter, clear errors."""

import subprocess
import sys

import espeakng_loader
import numpy as np
import pytest

from t2t_multimodel.data import espeak
from t2t_multimodel.modalities import spectrogram
from t2t_multimodel.problem import MissingDataError

SHORT = "God saw the light."
LONG = "God saw the light, and saw that it was good. God divided the light from the darkness."


def _seconds(waveform: np.ndarray) -> float:
  return len(waveform) / spectrogram.SAMPLE_RATE


def assert_same_speech(mel_a: np.ndarray, mel_b: np.ndarray, max_shift: int = 3) -> None:
  """Log-mel features [frames, 80] of one rendering, up to eSpeak's flutter phase (see espeak.py).

  Lengths agree within 2 frames, and each frame of `mel_a` is close to its best match
  within `max_shift` frames of `mel_b` (mean absolute difference, silence floored at -5).
  """
  assert abs(len(mel_a) - len(mel_b)) <= 2
  n = min(len(mel_a), len(mel_b))
  a, b = np.maximum(mel_a[:n], -5.0), np.maximum(mel_b[:n], -5.0)          # [n, 80]
  best = np.full([n], np.inf)
  for shift in range(-max_shift, max_shift + 1):
    lo, hi = max(0, -shift), min(n, n - shift)
    best[lo:hi] = np.minimum(best[lo:hi], np.abs(a[lo:hi] - b[lo + shift:hi + shift]).mean(axis=1))
  assert best.mean() < 0.5, best.mean()


def test_native_output_is_int16_at_22050_hz():
  samples, rate = espeak.synthesize_native(SHORT)
  assert rate == 22_050
  assert samples.dtype == np.int16 and samples.ndim == 1
  assert np.abs(samples).max() > 1000


def test_waveform_is_plausible_speech_at_16khz():
  waveform = espeak.synthesize(SHORT)
  native, rate = espeak.synthesize_native(SHORT)
  assert waveform.dtype == np.float32 and waveform.ndim == 1
  assert abs(len(waveform) - len(native) * spectrogram.SAMPLE_RATE / rate) <= 1
  assert 0.5 < _seconds(waveform) < 3.0
  assert -1.0 <= waveform.min() < 0.0 < waveform.max() <= 1.0
  assert np.sqrt(np.mean(waveform ** 2)) > 0.02  # not silent


def test_duration_grows_with_text_length_and_falls_with_rate():
  assert _seconds(espeak.synthesize(LONG)) > 2.5 * _seconds(espeak.synthesize(SHORT))
  slow = espeak.synthesize(LONG, espeak.Voice(rate=130))
  fast = espeak.synthesize(LONG, espeak.Voice(rate=210))
  assert _seconds(slow) > 1.3 * _seconds(fast)


def test_voices_differ():
  names = ["en-us", "en-gb-x-rp", "en-029", "en-gb-scotland+f2"]
  spectra = [spectrogram.log_mel_spectrogram(espeak.synthesize(SHORT, espeak.Voice(n))).mean(axis=0)
             for n in names]  # [80] each
  for i in range(len(names)):
    for j in range(i + 1, len(names)):
      assert np.abs(spectra[i] - spectra[j]).mean() > 0.05, (names[i], names[j])


def test_same_text_and_voice_give_the_same_speech_whatever_came_before():
  reference = espeak.synthesize(LONG, espeak.Voice("en-gb-x-rp+f2", rate=150, pitch=45))
  espeak.synthesize(SHORT, espeak.Voice("en-029+f4", rate=90, pitch=90))
  again = espeak.synthesize(LONG, espeak.Voice("en-gb-x-rp+f2", rate=150, pitch=45))
  assert_same_speech(spectrogram.log_mel_spectrogram(reference), spectrogram.log_mel_spectrogram(again))


_FRESH_PROCESS = """
import hashlib
from t2t_multimodel.data import espeak
digest = hashlib.sha256()
for text, name in [("God saw the light.", "en-us"), ("It was good.", "en-029+f2"), ("Amen.", "en")]:
  digest.update(espeak.synthesize_native(text, espeak.Voice(name))[0].tobytes())
print(digest.hexdigest())
"""


def test_fresh_processes_reproduce_samples_bit_for_bit():
  runs = [subprocess.Popen([sys.executable, "-c", _FRESH_PROCESS], stdout=subprocess.PIPE,
                           text=True) for _ in range(2)]
  digests = [run.communicate(timeout=120)[0].strip() for run in runs]
  assert all(run.returncode == 0 for run in runs)
  assert len(digests[0]) == 64 and digests[0] == digests[1]


def test_bad_voice_settings_name_the_value():
  with pytest.raises(ValueError, match="no-such-voice"):
    espeak.synthesize(SHORT, espeak.Voice("no-such-voice"))
  with pytest.raises(ValueError, match="text=' '"):
    espeak.synthesize(" ")
  with pytest.raises(ValueError, match="rate=20"):
    espeak.Voice(rate=20)
  with pytest.raises(ValueError, match="pitch=101"):
    espeak.Voice(pitch=101)


def test_missing_library_is_one_line_naming_the_wheel(monkeypatch, tmp_path):
  missing = str(tmp_path / "libespeak-ng.so")
  monkeypatch.setattr(espeakng_loader, "get_library_path", lambda: missing)
  with pytest.raises(MissingDataError) as info:
    espeak._Engine()
  message = str(info.value)
  assert "espeakng-loader" in message and "\n" not in message
  espeak.ensure_available()  # the process-wide engine is untouched
