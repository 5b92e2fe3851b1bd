"""train_tokens_per_s_vs_transformer: our training throughput against a plain keras-hub Transformer.

  python benchmarks/throughput.py [--data_dir=data/mm8_mini] [--hparams_set=multimodel_small]
                                  [--batches=8] [--rounds=5]

What a user would otherwise pick for translate_ende_bible is a plain Transformer encoder-decoder
(keras-hub `TransformerEncoder`/`TransformerDecoder`, benchmarks/peer_transformer.py). This script
trains both on the same batches in one process and prints their target tokens per second:

- Ours: the MultiModel of `--hparams_set` built for translate_ende_bible alone, trained by the real
  trainer's compiled step (`Trainer._train_fn`: forward, label-smoothed loss + MoE losses,
  gradients, clipping, Adam).
- The peer: the same width, heads, dropout, label smoothing, schedule and batches, with its depth
  and FFN width chosen so that its forward FLOPs on these batches equal ours within 10%
  (`flop_matched_peer`: analytic counts of matmuls, 2 FLOPs per multiply-add; our count is
  benchmarks/mfu.py's `forward_flops`, which the graph profiler checks there). So the figure
  compares implementations of the same work, not models of different size.

The batches are the trainer's own (translate_ende_bible train, seed 0, token buckets of
~batch_tokens positions), read once into memory so the input pipeline is not timed. Both steps
are traced and run once on every batch first (one trace each: their signatures leave the shapes
open). Then `--rounds` rounds each run all batches through ours and through the peer, in turns,
so a change of load hits both; a side's rate is its target tokens over its median round time.
`train_tokens_per_s_vs_transformer` = ours / peer (above 1: we train faster).
"""

from __future__ import annotations

import math
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import peer_sizing  # noqa: E402
import peer_transformer  # noqa: E402
from benchmarks import common  # noqa: E402
from benchmarks.mfu import forward_flops  # noqa: E402
from t2t_multimodel.hparams import get_hparams  # noqa: E402
from t2t_multimodel.hparams.base import HParams  # noqa: E402
from t2t_multimodel.run import run_config  # noqa: E402
from t2t_multimodel.train import training  # noqa: E402
from t2t_multimodel.train.optimization import make_optimizer  # noqa: E402
from t2t_multimodel.vocab import PAD_ID  # noqa: E402

PROBLEM = peer_sizing.PROBLEM
FLOP_TOLERANCE = 0.10  # |peer - ours| / ours, forward FLOPs on the timed batches


def peer_forward_flops(hp: HParams, layers: int, ffn: int, batch: int, s: int, t: int) -> int:
  """Forward FLOPs of the pre-LN keras-hub peer on [batch, s] inputs and [batch, t] targets."""
  d = hp.hidden_size
  encoder = layers * (2 * 4 * d * d + 2 * 2 * s * d + 2 * 2 * d * ffn)      # per source position
  memory = layers * 2 * 2 * d * d                                          # cross-attention k, v
  decoder = layers * (2 * 4 * d * d + 2 * 2 * t * d                        # self-attention
                      + 2 * 2 * d * d + 2 * 2 * s * d                      # cross-attention q, out
                      + 2 * 2 * d * ffn)                                   # FFN
  return batch * (s * (encoder + memory) + t * (decoder + 2 * d * hp.vocab_size))


def flop_matched_peer(hp: HParams, shapes: list[tuple[int, int, int]]) -> dict:
  """The peer's depth (per side) and FFN width whose forward FLOPs on `shapes` ([B, S, T] each)
  equal ours: every depth 1..MAX_LAYERS gets the FFN width that matches (the count is linear in
  it); the depth kept is the one whose width is closest in ratio to the standard 4 * hidden_size.

  Returns {"num_layers", "intermediate_dim", "ours_flops", "peer_flops"} (summed over `shapes`).
  """
  ours = sum(forward_flops(hp, *shape) for shape in shapes)

  def peer(layers: int, ffn: int) -> int:
    return sum(peer_forward_flops(hp, layers, ffn, *shape) for shape in shapes)

  candidates = []
  for layers in range(1, peer_sizing.MAX_LAYERS + 1):
    base, slope = peer(layers, 0), peer(layers, 1) - peer(layers, 0)
    ffn = round((ours - base) / slope)
    if ffn >= 1:
      ratio = abs(math.log(ffn / (peer_sizing.FFN_RATIO * hp.hidden_size)))
      candidates.append((ratio, layers, ffn))
  if not candidates:
    raise ValueError(f"No peer depth matches {ours:.3g} forward FLOPs: its attention alone costs more.")
  _, layers, ffn = min(candidates)
  flops = peer(layers, ffn)
  if abs(flops - ours) > FLOP_TOLERANCE * ours:
    raise ValueError(f"Expected a peer within {FLOP_TOLERANCE:.0%} of our FLOPs. Received: "
                     f"ours={ours}, peer={flops}")
  return {"num_layers": layers, "intermediate_dim": ffn, "ours_flops": ours, "peer_flops": flops}


def _rounds(step_fns: dict, batches: list[dict], rounds: int) -> dict[str, list[float]]:
  """Seconds of each side's pass over all `batches`, `rounds` times, the sides taking turns."""
  seconds = {name: [] for name in step_fns}
  for _ in range(rounds):
    for name, step in step_fns.items():
      start = time.perf_counter()
      for batch in batches:
        float(step(batch)[0])  # block on the loss, as the trainer does
      seconds[name].append(time.perf_counter() - start)
  return seconds


def main(argv: list[str] | None = None) -> int:
  args = common.step_timing_parser(__doc__).parse_args(argv)
  print(common.machine_note())
  hp = get_hparams(args.hparams_set)
  batches, dataset = common.train_batches(PROBLEM, args.data_dir, hp, args.batches)
  shapes = [(int(b["inputs"].shape[0]), int(b["inputs"].shape[1]), int(b["targets"].shape[1]))
            for b in batches]
  tokens = sum(int(tf.reduce_sum(tf.cast(b["targets"] != PAD_ID, tf.int32))) for b in batches)

  with tempfile.TemporaryDirectory() as output_dir:
    config = run_config.resolve_config(problems=PROBLEM, hparams_set=args.hparams_set,
                                       data_dir=args.data_dir, output_dir=output_dir, train_steps=1)
    trainer = training.Trainer(config)
  ours = trainer._train_fn(PROBLEM, dataset.element_spec)

  sizes = flop_matched_peer(hp, shapes)
  keras.utils.set_random_seed(0)
  peer = peer_transformer.PeerTransformer(
      vocab_size=hp.vocab_size, hidden_size=hp.hidden_size, num_heads=hp.num_heads,
      intermediate_dim=sizes["intermediate_dim"], num_encoder_layers=sizes["num_layers"],
      num_decoder_layers=sizes["num_layers"],
      max_input_length=peer_sizing.padded(hp.max_input_length, hp),
      max_target_length=peer_sizing.padded(hp.max_target_length, hp), dropout=hp.dropout)
  peer_step = peer_transformer._train_step_fn(peer, make_optimizer(hp), hp)
  peer_batches = [{"inputs": b["inputs"], "targets": b["targets"]} for b in batches]

  step_fns = {"ours": ours, "peer": lambda batch: peer_step({"inputs": batch["inputs"],
                                                             "targets": batch["targets"]})}
  start = time.perf_counter()
  _rounds(step_fns, peer_batches, 1)  # traces both steps and warms every shape
  print(f"warm-up (tracing and one pass each) {time.perf_counter() - start:.0f} s")
  seconds = _rounds(step_fns, peer_batches, args.rounds)
  rate = {name: tokens / statistics.median(times) for name, times in seconds.items()}
  print(f"{args.batches} {PROBLEM} batches, {tokens} target tokens, shapes [B, S, T] {shapes}")
  print(f"ours: {args.hparams_set}, {peer_sizing.trainable_params(trainer.model):,} params, "
        f"{sizes['ours_flops'] / 1e9:.2f} GFLOP forward per pass")
  print(f"peer: keras-hub {sizes['num_layers']}+{sizes['num_layers']} layers, FFN "
        f"{sizes['intermediate_dim']}, {peer_sizing.trainable_params(peer):,} params, "
        f"{sizes['peer_flops'] / 1e9:.2f} GFLOP forward per pass")
  for name, times in seconds.items():
    print(f"  {name}: median {statistics.median(times):.2f} s per pass "
          f"({', '.join(f'{t:.2f}' for t in times)}), {rate[name]:,.0f} target tokens/s")
  common.print_figure("train_tokens_per_s_vs_transformer", rate["ours"] / rate["peer"])
  common.print_figure("peer_over_ours.forward_flops", sizes["peer_flops"] / sizes["ours_flops"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
