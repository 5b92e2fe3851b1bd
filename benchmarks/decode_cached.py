"""decode_cached_speedup_256: greedy decoding of 256 tokens with multimodel_base, batch 8.

Full recompute (rerun the whole model over the 256-position target buffer for every token) over
incremental decoding (encode once, one cached step per token), same model and input, one run.
Every recompute step costs the same (the buffer is always 256 long), so its time is measured on
STEPS_TIMED steps and scaled to 256; the cached decoder runs all 256 steps. EOS is suppressed so
that both decode the full length.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from common import machine_note, print_figure
from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.infer import decoding
from t2t_multimodel.model.multimodel import MultiModel
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.vocab import EOS_ID

LENGTH, BATCH, STEPS_TIMED = 256, 8, 16


def main():
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument("--hparams_set", default="multimodel_base")
  args = parser.parse_args()
  print(machine_note())
  hp = get_hparams(args.hparams_set, "dropout=0.0,attention_dropout=0.0")
  problem = PROBLEMS.get("translate_ende_bible")
  model = MultiModel(hp, [problem.signature()])
  model.build_all()
  softmax = model.modality_nets["symbol"].softmax
  softmax.bias.assign(tf.tensor_scatter_nd_update(softmax.bias, [[EOS_ID]], [-1e9]))  # no early stop
  inputs = tf.constant(np.random.default_rng(0).integers(3, hp.vocab_size, (BATCH, 32)), tf.int32)

  # extra_length=None: all 256 tokens, not T2T's input length + 100 that decoding stops at by default.
  cached = tf.function(lambda x: decoding.decode_ids(model, problem.name, x, LENGTH, extra_length=None))
  cached(inputs).numpy()  # trace and warm up
  start = time.perf_counter()
  ids = cached(inputs).numpy()
  cached_seconds = time.perf_counter() - start
  assert (ids > 0).all(), "the cached decoder stopped early"

  full = tf.function(lambda x, t: model({"inputs": x, "targets": t}, problem=problem.name))
  targets = tf.zeros([BATCH, LENGTH], tf.int32)
  full(inputs, targets).numpy()
  start = time.perf_counter()
  for step in range(STEPS_TIMED):
    logits = full(inputs, targets)
    next_ids = tf.argmax(logits[:, step], axis=-1, output_type=tf.int32)
    targets = tf.tensor_scatter_nd_update(targets, [[b, step] for b in range(BATCH)], next_ids)
  targets.numpy()
  recompute_seconds = (time.perf_counter() - start) * LENGTH / STEPS_TIMED

  print(f"{args.hparams_set}, batch {BATCH}, {LENGTH} tokens: cached {cached_seconds:.2f} s "
        f"({1e3 * cached_seconds / LENGTH:.1f} ms/token), full recompute {recompute_seconds:.1f} s "
        f"(from {STEPS_TIMED} timed steps)")
  print_figure("decode_cached_speedup_256", recompute_seconds / cached_seconds, 1)


if __name__ == "__main__":
  main()
