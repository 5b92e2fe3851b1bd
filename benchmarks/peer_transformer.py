"""The peer: a plain keras-hub Transformer trained on translate_ende_bible, for a wall-time benchmark.

  python benchmarks/peer_transformer.py --data_dir=data/mm8_mini --seconds=20 --max_eval_examples=16

A benchmark compares our MultiModel with a plain Transformer of the same trainable parameter count
trained for the same wall time on the same batches. This module is that Transformer's side:
`peer_hparams_for(target_params, hp)` sizes it, `train_and_evaluate(data_dir, hp, seconds)` trains
and scores it.

The model (pre-LN, `normalize_first=True`, with a final LayerNorm on each side):

  inputs [B, S] --shared token embedding * sqrt(D) + source positions--> TransformerEncoder x N
  [EOS, y_0 .. y_{T-2}] --shared token embedding * sqrt(D) + target positions--> TransformerDecoder x M
      (causal self-attention, cross-attention to the encoder) --Dense--> logits [B, T, V]

As in the MultiModel, one token embedding serves inputs and targets (our SymbolModality) and the
output layer is an untied Dense with a bias (our softmax); positions are learned
(keras_hub.layers.PositionEmbedding). The decoder's first input is EOS (id 1, fairseq's
convention), where the MultiModel puts its command token: the peer learns one problem and needs
no command. Padding (id 0) is masked with explicit padding masks, never `mask_zero`.

The data is ours: `inputs.problem_dataset` gives the MultiModel's very batches (same seed, same
token buckets of ~batch_tokens positions). Its features hold no command token (the MultiModel
adds the command's embedding itself), so the peer uses "inputs" [B, S] (ids ending in EOS) and
"targets" [B, T] (ids ending in EOS unless cut at max_target_length) as they are, and drops
"targets_text" from evaluation batches after keeping it as the reference.

Training mirrors ours: Adam with our warmup + rsqrt schedule (`optimization.make_optimizer`), our
label-smoothed cross-entropy over non-padding targets (`modalities.smoothed_cross_entropy`),
gradients clipped by global norm at `clip_grad_norm`. Evaluation mirrors `evaluation.Evaluator`:
the split in generation order (or its seeded sample), greedy decoding through a K/V cache with
our `greedy_search` (up to max_target_length tokens, stopping when every row emitted EOS),
`vocab.decode` of each row, and `metrics.bleu/chrf/degenerate` against the stored reference text.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import keras_hub  # noqa: E402
import tensorflow as tf  # noqa: E402

from t2t_multimodel.data import inputs  # noqa: E402
from t2t_multimodel.data.features import text_key  # noqa: E402
from t2t_multimodel.evaluate import metrics  # noqa: E402
from t2t_multimodel.hparams import get_hparams  # noqa: E402
from t2t_multimodel.hparams.base import HParams  # noqa: E402
from t2t_multimodel.infer.beam_search import greedy_search  # noqa: E402
from t2t_multimodel.modalities.base import smoothed_cross_entropy  # noqa: E402
from t2t_multimodel.problems import get_problem  # noqa: E402
from t2t_multimodel.train.optimization import make_optimizer  # noqa: E402
from t2t_multimodel.vocab import EOS_ID, load_vocab, PAD_ID  # noqa: E402

from peer_sizing import (PARAM_TOLERANCE, PROBLEM, multimodel_params,  # noqa: E402
                         peer_hparams_for, trainable_params)

START_ID = EOS_ID               # the decoder's first input (fairseq's convention)
_IDS = tf.TensorSpec([None, None], tf.int32)


# --- The model. -----------------------------------------------------------------------------------


class PeerTransformer(keras.Model):
  """A plain encoder-decoder Transformer from keras-hub layers, for one text-to-text problem.

  Args:
    vocab_size: V, the shared vocabulary.
    hidden_size: D.
    num_heads: attention heads.
    intermediate_dim: the feed-forward width of every layer.
    num_encoder_layers: N.
    num_decoder_layers: M.
    max_input_length: the source position table's size (longest padded input).
    max_target_length: the target position table's size (longest padded target).
    dropout: on the embeddings and inside every layer (attention and feed-forward).

  Example:
    >>> model = PeerTransformer(8192, 128, 4, 512, 2, 2, 96, 256)
    >>> logits = model({"inputs": ids, "targets": target_ids})   # [B, T, 8192]
    >>> ids = greedy_decode(model, ids, max_length=256)          # [B, 256]
  """

  def __init__(self, vocab_size: int, hidden_size: int, num_heads: int, intermediate_dim: int,
               num_encoder_layers: int, num_decoder_layers: int, max_input_length: int,
               max_target_length: int, dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    self.sizes = dict(vocab_size=vocab_size, hidden_size=hidden_size, num_heads=num_heads,
                      intermediate_dim=intermediate_dim, num_encoder_layers=num_encoder_layers,
                      num_decoder_layers=num_decoder_layers, max_input_length=max_input_length,
                      max_target_length=max_target_length, dropout=dropout)
    self.token_embedding = keras.layers.Embedding(vocab_size, hidden_size, name="token_embedding")
    self.source_positions = keras_hub.layers.PositionEmbedding(max_input_length,
                                                               name="source_positions")
    self.target_positions = keras_hub.layers.PositionEmbedding(max_target_length,
                                                               name="target_positions")
    self.embedding_dropout = keras.layers.Dropout(dropout)
    self.encoder_layers = [
        keras_hub.layers.TransformerEncoder(intermediate_dim, num_heads, dropout=dropout,
                                            normalize_first=True, name=f"encoder_{i}")
        for i in range(num_encoder_layers)]
    self.decoder_layers = [
        keras_hub.layers.TransformerDecoder(intermediate_dim, num_heads, dropout=dropout,
                                            normalize_first=True, name=f"decoder_{i}")
        for i in range(num_decoder_layers)]
    self.encoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="encoder_norm")
    self.decoder_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="decoder_norm")
    self.softmax = keras.layers.Dense(vocab_size, name="softmax")

  def _embed(self, ids, positions, start_index=0, training=False):
    x = self.token_embedding(ids) * math.sqrt(self.sizes["hidden_size"])  # [B, T, D]
    x = x + positions(x, start_index=start_index)
    return self.embedding_dropout(x, training=training)

  def encode(self, source, training=False):
    """(encoded [B, S, D], padding mask [B, S]) of source ids [B, S]."""
    mask = tf.not_equal(source, PAD_ID)                                    # [B, S]
    x = self._embed(source, self.source_positions, training=training)
    for layer in self.encoder_layers:
      x = layer(x, padding_mask=mask, training=training)
    return self.encoder_norm(x), mask

  def call(self, features, training=False):
    """Teacher-forced logits [B, T, V] of features {"inputs": [B, S], "targets": [B, T]}."""
    encoded, source_mask = self.encode(features["inputs"], training)
    targets = features["targets"]                                          # [B, T]
    start = tf.fill([tf.shape(targets)[0], 1], START_ID)
    shifted = tf.concat([start, targets[:, :-1]], axis=1)                  # [B, T]
    y = self._embed(shifted, self.target_positions, training=training)    # [B, T, D]
    for layer in self.decoder_layers:
      y = layer(y, encoded, decoder_padding_mask=tf.not_equal(shifted, PAD_ID),
                encoder_padding_mask=source_mask, training=training)
    return self.softmax(self.decoder_norm(y))                              # [B, T, V]

  # --- Incremental decoding through keras-hub's K/V caches. --------------------------------------

  def init_cache(self, encoded, source_mask, max_length: int) -> dict:
    """Zero self-attention caches [B, 2, L, H, D/H] and the cross-attention K/V of `encoded`."""
    batch_size = tf.shape(encoded)[0]
    heads = self.sizes["num_heads"]
    head_dim = self.sizes["hidden_size"] // heads
    empty = tf.zeros([batch_size, 2, max_length, heads, head_dim], encoded.dtype)
    cross_empty = tf.zeros([batch_size, 2, tf.shape(encoded)[1], heads, head_dim], encoded.dtype)
    probe = tf.zeros([batch_size, 1, self.sizes["hidden_size"]], encoded.dtype)
    cross = []
    for layer in self.decoder_layers:  # cross K/V depend on `encoded` only: any query fills them
      _, _, keys_values = layer(probe, encoded, encoder_padding_mask=source_mask,
                                self_attention_cache=empty, self_attention_cache_update_index=0,
                                cross_attention_cache=cross_empty,
                                cross_attention_cache_update_index=0)
      cross.append(keys_values)
    return {"encoded": encoded, "source_mask": source_mask, "cross": cross,
            "self": [empty] * len(self.decoder_layers)}

  def decode_step(self, prev_ids, step, cache):
    """Logits [B, V] of target position `step`; prev_ids [B] is the token at step - 1."""
    ids = tf.where(tf.equal(step, 0), tf.fill(tf.shape(prev_ids), START_ID), prev_ids)[:, None]
    y = self._embed(ids, self.target_positions, start_index=step)         # [B, 1, D]
    new_self = []
    for layer, self_cache, cross_cache in zip(self.decoder_layers, cache["self"], cache["cross"]):
      y, self_cache, _ = layer(y, cache["encoded"], encoder_padding_mask=cache["source_mask"],
                               self_attention_cache=self_cache,
                               self_attention_cache_update_index=step,
                               cross_attention_cache=cross_cache)
      new_self.append(self_cache)
    logits = self.softmax(self.decoder_norm(y))[:, 0]                      # [B, V]
    return logits, {**cache, "self": new_self}

  def get_config(self):
    return {**super().get_config(), **self.sizes}


def greedy_decode(model: PeerTransformer, source, max_length: int):
  """Greedy ids [B, max_length], 0 after each row's EOS (our `greedy_search`, a K/V cache)."""
  encoded, source_mask = model.encode(source)
  cache = model.init_cache(encoded, source_mask, max_length)
  return greedy_search(model.decode_step, cache, tf.shape(source)[0], max_length, eos_id=EOS_ID)


def build_peer(sizes: dict) -> PeerTransformer:
  """The PeerTransformer of `peer_hparams_for`'s sizes, built; its count checked against them."""
  model = PeerTransformer(**{k: v for k, v in sizes.items() if k != "params"})
  dummy = tf.ones([1, 8], tf.int32)
  model({"inputs": dummy, "targets": dummy})
  count = trainable_params(model)
  assert count == sizes["params"], f"peer has {count} params, its sizing predicted {sizes['params']}"
  return model


# --- Training and evaluation. ---------------------------------------------------------------------


def _train_step_fn(model: PeerTransformer, optimizer, hp: HParams):
  """tf.function: one Adam update on a batch; returns (loss, target tokens). Traced once."""

  @tf.function(input_signature=[{"inputs": _IDS, "targets": _IDS}])
  def train_step(batch):
    with tf.GradientTape() as tape:
      logits = model(batch, training=True)                                 # [B, T, V]
      weights = tf.cast(tf.not_equal(batch["targets"], PAD_ID), tf.float32)  # [B, T]
      loss, tokens = smoothed_cross_entropy(logits, batch["targets"], weights, hp.label_smoothing)
    grads = tape.gradient(loss, model.trainable_variables)
    if hp.clip_grad_norm > 0:
      grads, _ = tf.clip_by_global_norm(grads, hp.clip_grad_norm)
    optimizer.apply(grads, model.trainable_variables)
    return loss, tokens

  return train_step


def train(model: PeerTransformer, data_dir: str, hp: HParams, seconds: float, seed: int = 0,
          include_warmup: bool = False, clock: Callable[[], float] = time.perf_counter) -> dict:
  """Trains on our train batches until `seconds` of `clock` have passed (checked every step):
  wall time by default; `time.process_time` budgets this process's CPU seconds instead, which
  stays fair when other jobs share the cores.

  The first step traces the train step (tens of seconds on 2 CPU cores): by default it is
  warm-up, outside the budget and the token rate, though its update counts as a step; with
  `include_warmup` the clock starts before it (and before the input pipeline's first batch).

  Returns:
    {"steps" (all, warm-up included), "seconds" (the timed wall time), "warmup_seconds",
     "target_tokens" (non-padding targets of the timed steps), "loss" (the last step's)}.
  """
  problem = get_problem(PROBLEM)
  dataset = inputs.problem_dataset(problem, "train", data_dir, hp, training=True, seed=seed)
  step_fn = _train_step_fn(model, make_optimizer(hp), hp)
  steps, tokens, loss, warmup = 0, 0, float("nan"), 0.0
  begin = start = clock()
  for batch in dataset:
    loss_t, tokens_t = step_fn({"inputs": batch["inputs"], "targets": batch["targets"]})
    steps, loss = steps + 1, float(loss_t)
    if not math.isfinite(loss):
      raise FloatingPointError(f"The peer's loss is {loss} at step {steps}.")
    if steps == 1 and not include_warmup:
      warmup = clock() - begin
      start = clock()
      continue
    tokens += int(tokens_t)
    if clock() - start >= seconds:
      break
  return {"steps": steps, "seconds": clock() - start, "warmup_seconds": warmup,
          "target_tokens": tokens, "loss": loss}


def evaluate(model: PeerTransformer, data_dir: str, hp: HParams, split: str = "test",
             sample: int = 0, seed: int = 0) -> dict:
  """BLEU, chrF and the degenerate share of greedy decodes, as `evaluation.Evaluator` scores them.

  `sample` 0: the whole split; else our Evaluator's seeded sample of that many examples.
  Returns {"bleu", "chrf", "degenerate", "examples", "samples" (the first 3 decodes)}.
  """
  problem, vocab = get_problem(PROBLEM), load_vocab(data_dir)
  dataset = inputs.problem_dataset(problem, split, data_dir, hp, training=False, seed=seed,
                                   sample=sample)
  decode = tf.function(lambda source: greedy_decode(model, source, hp.max_target_length),
                       input_signature=[_IDS])
  sources, hypotheses, references = [], [], []
  for batch in dataset:
    ids = decode(batch["inputs"]).numpy()                                  # [B, L]
    hypotheses += [vocab.decode(row.tolist()) for row in ids]
    references += [text.decode("utf-8") for text in batch[text_key("targets")].numpy()]
    sources += [vocab.decode(row.tolist()) for row in batch["inputs"].numpy()]
  samples = [{"input": s, "reference": r, "hypothesis": h}
             for s, r, h in zip(sources, references, hypotheses)][:3]
  return {"bleu": metrics.bleu(hypotheses, references), "chrf": metrics.chrf(hypotheses, references),
          "degenerate": metrics.degenerate(hypotheses, references), "examples": len(hypotheses),
          "samples": samples}


def train_and_evaluate(data_dir: str, hp: HParams, seconds: float, *, seed: int = 0,
                       split: str = "test", max_eval_examples: int | None = None,
                       target_params: int | None = None, include_warmup: bool = False,
                       clock: Callable[[], float] = time.perf_counter) -> dict:
  """Trains the peer for `seconds` of wall time on translate_ende_bible, then scores `split`.

  Args:
    data_dir: an mm-datagen data dir holding translate_ende_bible and the vocabulary.
    hp: our HParams (width, heads, dropout, label smoothing, schedule, batches, lengths, vocab).
    seconds: the training wall-time budget.
    seed: the weights', dropout's and batches' seed (the batches are ours for the same seed).
    split: the split scored, whole unless `max_eval_examples` is given.
    max_eval_examples: score only our Evaluator's seeded sample of this many examples.
    target_params: the count to match; default: our MultiModel's for translate_ende_bible.
    include_warmup: count the first step (tracing) in `seconds` (see `train`).
    clock: what `seconds` counts (see `train`): wall time by default.

  Returns:
    {"params", "steps", "seconds", "target_tokens_per_second", "bleu", "chrf", "degenerate",
     "examples", "num_encoder_layers", "num_decoder_layers", "intermediate_dim"}, and
    "target_params", "warmup_seconds", "eval_seconds", "loss" (the last step's), "samples"
    (the first 3 decodes).
  """
  if target_params is None:
    target_params = multimodel_params(hp)
  keras.utils.set_random_seed(seed)
  sizes = peer_hparams_for(target_params, hp)
  model = build_peer(sizes)
  params = trainable_params(model)
  assert abs(params - target_params) <= PARAM_TOLERANCE * target_params, (params, target_params)
  trained = train(model, data_dir, hp, seconds, seed, include_warmup, clock)
  start = time.perf_counter()
  scores = evaluate(model, data_dir, hp, split, max_eval_examples or 0, seed)
  eval_seconds = time.perf_counter() - start
  return {"params": params, "target_params": target_params,
          "steps": trained["steps"], "seconds": trained["seconds"],
          "target_tokens_per_second": trained["target_tokens"] / max(trained["seconds"], 1e-9),
          "warmup_seconds": trained["warmup_seconds"], "eval_seconds": eval_seconds,
          "loss": trained["loss"], **{k: scores[k] for k in ("bleu", "chrf", "degenerate")},
          "examples": scores["examples"],
          **{k: sizes[k] for k in ("num_encoder_layers", "num_decoder_layers", "intermediate_dim")},
          "samples": scores["samples"]}


def main():
  parser = argparse.ArgumentParser(description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data_dir", default="data/mm8_mini")
  parser.add_argument("--hparams_set", default="multimodel_small")
  parser.add_argument("--seconds", type=float, default=20.0)
  parser.add_argument("--max_eval_examples", type=int, default=16)
  parser.add_argument("--split", default="test")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--include_warmup", action="store_true")
  args = parser.parse_args()
  hp = get_hparams(args.hparams_set)
  result = train_and_evaluate(args.data_dir, hp, args.seconds, seed=args.seed, split=args.split,
                              max_eval_examples=args.max_eval_examples or None,
                              include_warmup=args.include_warmup)
  samples = result.pop("samples")
  print(json.dumps(result, indent=2))
  for sample in samples[:1]:
    print(json.dumps({k: v[:160] for k, v in sample.items()}, ensure_ascii=False))
  print(f"params_ratio={result['params'] / result['target_params']:.3f}")


if __name__ == "__main__":
  main()
