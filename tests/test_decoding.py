"""Decoding with the model: cached greedy equals full recompute; beam search; raw inputs; odd lines."""

import io
import wave

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from t2t_multimodel import decoding
from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.model import MultiModel
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.vocab import SubwordVocab

PROBLEM_NAMES = ("translate_ende_bible", "caption_emoji", "speech_espeak", "image_digits")


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
  texts = ["In the beginning God created the heavens and the earth.", "Im Anfang schuf Gott."] * 50
  return SubwordVocab.build(texts, str(tmp_path_factory.mktemp("v") / "v.model"), vocab_size=400)


@pytest.fixture(scope="module")
def model():
  hp = get_hparams("multimodel_tiny", "dropout=0.0,attention_dropout=0.0,vocab_size=400,max_input_length=16")
  tf.keras.utils.set_random_seed(1)
  m = MultiModel(hp, [PROBLEMS.get(n).signature() for n in PROBLEM_NAMES])
  m.build_all()
  # Sharpen the softmax so that greedy decodes are long and varied, not all-EOS.
  top = m.modality_nets["symbol"].softmax
  top.kernel.assign(top.kernel * 20.0)
  return m


def test_cached_greedy_equals_recompute_token_for_token(model, vocab):
  problem = PROBLEMS.get("translate_ende_bible")
  batch = decoding.prepare_inputs(problem, model.hp, vocab, ["In the beginning", "God created the earth."])
  cached = decoding.decode_ids(model, problem.name, batch, max_length=12)
  recomputed = decoding.greedy_recompute(model, problem.name, batch, max_length=12)
  np.testing.assert_array_equal(cached.numpy(), recomputed.numpy())
  assert (cached.numpy() > 1).sum() >= 4  # a real, non-trivial output


def test_beam_search_runs_on_the_model_and_is_at_least_as_likely(model, vocab):
  problem = PROBLEMS.get("translate_ende_bible")
  batch = decoding.prepare_inputs(problem, model.hp, vocab, ["In the beginning"])

  def log_prob(ids):
    targets = tf.constant([ids], tf.int32)
    logits = model({"inputs": batch, "targets": targets}, problem=problem.name)
    lp = tf.nn.log_softmax(logits)[0].numpy()
    return sum(lp[t, i] for t, i in enumerate(ids) if i)

  greedy = [int(i) for i in decoding.decode_ids(model, problem.name, batch, 8)[0].numpy()]
  beam = [int(i) for i in decoding.decode_ids(model, problem.name, batch, 8, beam_size=4, alpha=0.0)[0].numpy()]
  finished = lambda ids: 1 in ids
  if finished(greedy) and finished(beam):
    assert log_prob(beam) >= log_prob(greedy) - 1e-4


def test_decoder_outputs_one_line_per_input_and_empty_for_empty(model, vocab, caplog):
  decoder = decoding.Decoder(model, PROBLEMS.get("translate_ende_bible"), model.hp, vocab, max_length=6)
  long_line = " ".join(["beginning"] * 40)
  outputs = decoder.decode(["In the beginning", "", "Ünïcödé ✓ 🙂", long_line])
  assert len(outputs) == 4 and outputs[1] == ""
  assert all(isinstance(o, str) for o in outputs)
  assert "cut to the model's limit" in caplog.text


def test_image_and_audio_files(model, vocab, tmp_path):
  image = tmp_path / "digit.png"
  Image.fromarray(np.random.default_rng(0).integers(0, 255, (8, 8), np.uint8)).save(image)
  labels = decoding.Decoder(model, PROBLEMS.get("image_digits"), model.hp, None).decode([str(image)])
  assert labels[0] in [str(i) for i in range(10)]
  captions = decoding.Decoder(model, PROBLEMS.get("caption_emoji"), model.hp, vocab, max_length=5)
  assert isinstance(captions.decode([str(image)])[0], str)
  wav = tmp_path / "a.wav"
  with wave.open(str(wav), "wb") as f:
    f.setnchannels(1), f.setsampwidth(2), f.setframerate(16000)
    f.writeframes((np.sin(np.arange(8000) / 5.0) * 3000).astype(np.int16).tobytes())
  speech = decoding.Decoder(model, PROBLEMS.get("speech_espeak"), model.hp, vocab, max_length=5)
  assert isinstance(speech.decode([str(wav)])[0], str)
