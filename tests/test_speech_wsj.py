"""speech_wsj: WAV and NIST SPHERE audio with .dot / TSV transcripts, WSJ's folders, missing data."""

import os
import shutil
import wave

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.data import features
from t2t_multimodel.modalities import spectrogram
from t2t_multimodel.problem import CommandToken, MissingDataError, SPLITS
from t2t_multimodel.problems import speech_wsj
from t2t_multimodel.problems.speech_wsj import SpeechWsj
from t2t_multimodel.vocab import SubwordVocab


def _tone(seconds, rate, hz=440.0):
  t = np.arange(int(seconds * rate)) / rate
  return (8000 * np.sin(2 * np.pi * hz * t) * np.linspace(0.2, 1.0, len(t))).astype(np.int16)


def _wav(path, samples, rate):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with wave.open(str(path), "wb") as f:
    f.setnchannels(1)
    f.setsampwidth(2)
    f.setframerate(rate)
    f.writeframes(samples.astype("<i2").tobytes())


def _sphere(path, samples, rate, coding="pcm", utterance_id="011c0201"):
  """A WSJ-style .wv1: NIST_1A header of 1024 bytes, big-endian 16-bit samples."""
  fields = [("microphone", "-s25", "Sennheiser HMD410 close-talking"), ("recording_site", "-s3", "SRI"),
            ("database_id", "-s7", "WSJ0-SI"), ("utterance_id", f"-s{len(utterance_id)}", utterance_id),
            ("speaking_mode", "-s11", "read-common"), ("channel_count", "-i", "1"),
            ("sample_count", "-i", str(len(samples))), ("sample_rate", "-i", str(rate)),
            ("sample_n_bytes", "-i", "2"), ("sample_byte_format", "-s2", "10"),
            ("sample_sig_bits", "-i", "16"),
            ("sample_coding", f"-s{len(coding)}", coding)]
  header = "NIST_1A\n   1024\n" + "".join(f"{k} {t} {v}\n" for k, t, v in fields) + "end_head\n"
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "wb") as f:
    f.write(header.encode("ascii").ljust(1024, b" ") + samples.astype(">i2").tobytes())


def _dot(path, lines):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="latin-1") as f:
    f.write("".join(f"{text} ({utt})\n" for utt, text in lines))


TRAIN_SPHERE = _tone(0.5, 16000)
TRAIN_WAV = _tone(0.3, 22050, 300.0)


@pytest.fixture
def wsj_dir(tmp_path):
  """WSJ0/WSJ1 folders: si_tr_s (train), si_dt_20 (dev93 in wsj1), si_et_20 (eval92), other sets."""
  wsj = tmp_path / "wsj"
  _sphere(wsj / "wsj0/si_tr_s/011/011c0201.wv1", TRAIN_SPHERE, 16000)
  _dot(wsj / "wsj0/transcrp/dots/si_tr_s/011/011c02.dot",
       [("011c0201", "Of course there isn\\'t any guarantee the company will keep its hot hand "
                     "[misc_noise]"),
        ("011c0202", "This utterance has no audio .PERIOD")])
  _wav(wsj / "wsj1/si_tr_s/46a/46ac0101.wav", TRAIN_WAV, 22050)
  _dot(wsj / "wsj1/si_tr_s/46a/46ac01.dot",
       [("46ac0101", "[loud_breath] Computers from I\\. B\\. M\\. ,COMMA too")])
  _wav(wsj / "wsj1/si_dt_20/4k0/4k0c0301.wav", _tone(0.2, 16000), 16000)
  _dot(wsj / "wsj1/si_dt_20/4k0/4k0c03.dot", [("4k0c0301", "Prices rose forty-two %PERCENT [door_slam]")])
  _wav(wsj / "wsj0/si_dt_20/40a/40ac0101.wav", _tone(0.2, 16000), 16000)     # WSJ0 dev: not dev93
  _dot(wsj / "wsj0/si_dt_20/40a/40ac01.dot", [("40ac0101", "Not in dev93")])
  _sphere(wsj / "wsj0/si_et_20/440/440c0201.wv1", _tone(0.2, 16000), 16000, "pcm,embedded-shorten-v1.1")
  _wav(wsj / "wsj0/si_et_20/440/440c0201.wav", _tone(0.25, 16000), 16000)    # sph2pipe's copy wins
  _dot(wsj / "wsj0/si_et_20/440/440c02.dot", [("440c0201", "The sale of the hotel ~")])
  _wav(wsj / "wsj0/si_dt_05/40b/40bc0101.wav", _tone(0.2, 16000), 16000)     # a 5k set: not read
  _dot(wsj / "wsj0/si_dt_05/40b/40bc01.dot", [("40bc0101", "Five k")])
  return str(tmp_path)


def test_declaration():
  problem = SpeechWsj()
  assert problem.name == "speech_wsj" and problem.full_data
  assert (problem.input_modality, problem.target_modality) == ("audio", "symbol")
  assert problem.command == CommandToken.TO_TRANSCRIPT and problem.metrics == ("wer",)
  assert problem.train_shards == 10


@pytest.mark.parametrize("dot, transcript", [
    ("Of course there isn\\'t any guarantee the company will keep its hot hand [misc_noise]",
     "of course there isn't any guarantee the company will keep its hot hand"),
    ("[loud_breath] And new computers I\\. B\\. M\\. introduced [door_slam]",
     "and new computers i b m introduced"),
    ('Mr. Smith said ,COMMA "DOUBLE-QUOTE it\'s <all> over ~ .PERIOD',
     "mr smith said comma double quote it's all over period"),
    ("[<door_slam] The *profit* rose forty-two %PERCENT . [phone_ring/] today [/phone_ring] "
     "(LEFT-PAREN s:o",
     "the profit rose forty two percent today left paren so"),
    ("[lip_smack] ~", ""),
])
def test_normalize_transcript(dot, transcript):
  assert speech_wsj.normalize_transcript(dot) == transcript


def test_sphere_and_wav_readers():
  import tempfile
  with tempfile.TemporaryDirectory() as folder:
    _sphere(os.path.join(folder, "a.wv1"), TRAIN_SPHERE, 16000)
    waveform, rate = spectrogram.read_sphere(os.path.join(folder, "a.wv1"))
    assert rate == 16000 and waveform.dtype == np.float32
    np.testing.assert_array_equal(waveform, TRAIN_SPHERE / 32768.0)     # big-endian, header skipped
    _wav(os.path.join(folder, "b.wav"), TRAIN_WAV, 22050)
    waveform, rate = spectrogram.read_wav(os.path.join(folder, "b.wav"))
    assert rate == 22050
    np.testing.assert_array_equal(waveform, TRAIN_WAV / 32768.0)


def test_wsj_folders_make_the_splits(wsj_dir):
  problem = SpeechWsj()
  problem.check_data(wsj_dir)          # the shorten .wv1 has a .wav copy
  assert problem.transcripts("train", wsj_dir) == [
      "of course there isn't any guarantee the company will keep its hot hand",
      "computers from i b m comma too"]
  assert problem.transcripts("dev", wsj_dir) == ["prices rose forty two percent"]
  assert problem.transcripts("test", wsj_dir) == ["the sale of the hotel"]
  assert list(problem.vocab_texts(wsj_dir)) == problem.transcripts("train", wsj_dir)
  samples = {split: list(problem.generate_samples(split, wsj_dir)) for split in SPLITS}
  seconds = [0.5, 0.3, 0.2, 0.25]      # 22.05 kHz resampled to 16 kHz; 10 ms frames
  shapes = [s["inputs"].shape for split in ("train", "dev", "test") for s in samples[split]]
  assert shapes == [(int(np.ceil(s * 100)), spectrogram.NUM_MEL_BINS) for s in seconds]
  for split_samples in samples.values():
    for sample in split_samples:
      assert np.isfinite(sample["inputs"]).all() and sample["inputs"].std() > 1.0


def test_samples_encode_and_parse_back(wsj_dir, tmp_path):
  problem = SpeechWsj()
  vocab = SubwordVocab.build(problem.vocab_texts(wsj_dir), str(tmp_path / "v.model"), vocab_size=300)
  parse = features.parse_fn("audio", "symbol")
  for split in ("train", "dev", "test"):
    for sample in problem.generate_samples(split, wsj_dir):
      decoded = parse(tf.constant(features.encode_example(sample, "audio", "symbol", vocab)))
      np.testing.assert_allclose(decoded["inputs"].numpy(), sample["inputs"], atol=0.02, rtol=0.002)
      assert vocab.decode(decoded["targets"].numpy()) == sample["targets"]


def test_shorten_sphere_fails_with_one_line_naming_sph2pipe(wsj_dir):
  os.remove(os.path.join(wsj_dir, "wsj", "wsj0/si_et_20/440/440c0201.wav"))
  with pytest.raises(spectrogram.UnsupportedAudioError) as info:
    SpeechWsj().check_data(wsj_dir)
  message = str(info.value)
  assert "\n" not in message and "440c0201.wv1" in message
  assert "shorten" in message and "sph2pipe" in message
  assert isinstance(info.value, MissingDataError)   # so the CLIs print it as one line


def test_tsv_transcripts_split_by_speaker(tmp_path):
  wsj = tmp_path / "wsj"
  lines = ["path\ttext"]
  for speaker in ("anna", "ben", "carl"):
    for i in range(2):
      _wav(wsj / speaker / f"utt{i}.wav", _tone(0.1 + 0.05 * i, 16000), 16000)
      lines.append(f"{speaker}/utt{i}.wav\t{speaker.capitalize()} says number {i}")
  (wsj / "transcripts.tsv").write_text("\n".join(lines) + "\n")
  splits = SpeechWsj().splits(str(tmp_path))
  speakers = {split: {u.speaker for u in chosen} for split, chosen in splits.items()}
  assert all(len(s) == 1 for s in speakers.values())
  assert set.union(*speakers.values()) == {"anna", "ben", "carl"}
  for split, chosen in splits.items():
    speaker = speakers[split].pop()
    assert [u.transcript for u in chosen] == [f"{speaker} says number 0", f"{speaker} says number 1"]
  assert splits == SpeechWsj().splits(str(tmp_path))   # deterministic


def test_two_speakers_split_by_utterance(tmp_path):
  wsj = tmp_path / "wsj"
  for speaker, count in (("s1", 3), ("s2", 2)):
    _dot(wsj / speaker / f"{speaker}.dot", [(f"{speaker}u{i}", f"word {i}") for i in range(count)])
    for i in range(count):
      _wav(wsj / speaker / f"{speaker}u{i}.wav", _tone(0.1, 16000), 16000)
  splits = SpeechWsj().splits(str(tmp_path))
  assert [len(splits[s]) for s in ("train", "dev", "test")] == [3, 1, 1]
  shutil.copytree(wsj, tmp_path / "moved" / "wsj")     # the split does not depend on where the corpus is
  moved = SpeechWsj().splits(str(tmp_path / "moved"))
  assert {s: [u.utterance_id for u in moved[s]] for s in SPLITS} == {
      s: [u.utterance_id for u in splits[s]] for s in SPLITS}


def test_missing_data_is_one_line_naming_the_data_set_and_the_place(tmp_path):
  with pytest.raises(MissingDataError) as info:
    SpeechWsj().check_data(str(tmp_path))
  message = str(info.value)
  assert "\n" not in message and "WSJ" in message and "speech_wsj" in message
  assert str(tmp_path / "wsj") in message
  _wav(tmp_path / "wsj/wsj0/si_tr_s/011/011c0201.wav", _tone(0.1, 16000), 16000)
  _dot(tmp_path / "wsj/wsj0/si_tr_s/011/011c02.dot", [("011c0201", "Only training data")])
  with pytest.raises(MissingDataError, match=r"^speech_wsj found no dev or test utterances in .*wsj/"):
    SpeechWsj().check_data(str(tmp_path))
