"""Decoding with the model: cached greedy equals full recompute; beam search; raw inputs; odd lines."""

import wave

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.infer import decoding
from t2t_multimodel.infer.beam_search import beam_search
from t2t_multimodel.model.multimodel import MultiModel
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.vocab import EOS_ID, SubwordVocab

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


@pytest.mark.parametrize("beam_size", [1, 3])
def test_text_inputs_decode_at_most_their_length_plus_extra_length(model, vocab, beam_size):
  # Greedy, then beam: the cut output is the first input length + extra_length tokens of the
  # uncut one, which the sharpened untrained model runs on past that without EOS.
  problem = PROBLEMS.get("translate_ende_bible")
  batch = decoding.prepare_inputs(problem, model.hp, vocab, ["In the beginning", "God created the earth."])
  length, extra = int(batch.shape[1]), 3
  cut = decoding.decode_ids(model, problem.name, batch, length + 10, beam_size, extra_length=extra).numpy()
  uncut = decoding.decode_ids(model, problem.name, batch, length + 10, beam_size, extra_length=None).numpy()
  assert not cut[:, length + extra:].any()
  long_rows = [r for r in range(2) if EOS_ID not in uncut[r, :length + extra]]
  assert long_rows and all(uncut[r, length + extra:].any() for r in long_rows)
  if beam_size == 1:
    np.testing.assert_array_equal(cut[:, :length + extra], uncut[:, :length + extra])


def test_beam_search_on_the_model_returns_the_score_of_what_it_returns(model, vocab):
  # Beam quality is checked against brute force in test_beam_search.py; here: on the model's cache,
  # each returned score is the full model's log-prob of the returned ids over the length penalty.
  problem = PROBLEMS.get("translate_ende_bible")
  batch = decoding.prepare_inputs(problem, model.hp, vocab, ["In the beginning", "God created the earth."])
  max_length, alpha = 8, 0.6
  state = model.encode({"inputs": batch}, problem.name)

  def step_fn(ids, step, cache):  # as decoding.decode_ids builds it
    logits, new_cache = model.decode_step(cache["state"], cache["cache"], ids, step, problem.name)
    return logits, {"state": cache["state"], "cache": new_cache}

  nest = {"state": state, "cache": model.init_cache(state, max_length)}
  ids, scores = beam_search(step_fn, nest, 2, beam_size=4, max_length=max_length, eos_id=EOS_ID,
                            alpha=alpha)
  np.testing.assert_array_equal(
      ids.numpy(), decoding.decode_ids(model, problem.name, batch, max_length, beam_size=4, alpha=alpha).numpy())
  logits = model({"inputs": batch, "targets": ids}, problem=problem.name)
  log_probs = tf.nn.log_softmax(logits).numpy()                                 # [B, L, V]
  for row, tokens in enumerate(ids.numpy().tolist()):
    length = tokens.index(EOS_ID) + 1 if EOS_ID in tokens else max_length
    assert not any(tokens[length:])
    total = sum(log_probs[row, t, tokens[t]] for t in range(length))
    assert scores[row].numpy() == pytest.approx(total / ((5.0 + length) / 6.0) ** alpha, abs=1e-3)


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
