"""mfu: model FLOP/s of a multimodel_base training step over the FLOP/s of a large fp32 matmul.

  python benchmarks/mfu.py [--data_dir=data/mm8_mini] [--hparams=batch_size=128] [--batches=3]
                           [--repeats=3] [--jit] [--check_count]

The train step is the trainer's (Trainer._replica_step with one replica): forward in training
mode, label-smoothed cross-entropy + the MoE balancing losses, gradients, clipping by global
norm, Adam. It runs on translate_ende_bible training batches from the data dir (bucketed shapes,
as the trainer sees them), or on synthetic batches of typical bucket shapes when the data dir is
absent. Model FLOPs are counted analytically from the architecture and each batch's padded
shapes (`forward_flops`: matmuls and convolutions, 2 FLOPs per multiply-add; embeddings, norms
and elementwise ops are not counted), times 3 for forward + backward; the MoE counts the k
experts each token actually runs. The ceiling is `common.matmul_flops_per_second` (a 2,048^3
fp32 matmul). Train steps and matmuls take turns within each of `--repeats` rounds, so a load
change hits both; the figure is the ratio of the medians, all in this one run (a second line
uses the fastest matmul round instead: on shared cores the matmul swings more than the step). --check_count
also counts the forward FLOPs on the graph (tf.compat.v1.profiler float_ops) to check the
analytic count.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

from benchmarks import common  # noqa: E402
from t2t_multimodel.data import inputs  # noqa: E402
from t2t_multimodel.data.data_dir import DataNotFoundError  # noqa: E402
from t2t_multimodel.hparams import get_hparams  # noqa: E402
from t2t_multimodel.model.multimodel import MultiModel  # noqa: E402
from t2t_multimodel.problems import PROBLEMS  # noqa: E402
from t2t_multimodel.train import optimization

PROBLEM = "translate_ende_bible"
SYNTHETIC_SHAPES = [(48, 48), (32, 48), (64, 64)]  # (inputs, targets) lengths: typical buckets.


def _sep_conv(d: int, kernel: int) -> int:
  """Per position: depthwise (kernel * D) + pointwise (D * D) multiply-adds, as FLOPs."""
  return 2 * d * (kernel + d)


def _conv_block(hp) -> int:
  return sum(_sep_conv(hp.hidden_size, k) for k in (3, 3, hp.large_kernel_size,
                                                    hp.large_kernel_size))


def _moe(hp) -> int:
  """Per token: the gate and noise matmuls (training) and k experts D -> F -> D."""
  d = hp.hidden_size
  return 2 * d * 2 * hp.num_experts + hp.moe_k * 2 * 2 * d * hp.filter_size


def _attention_block(hp, t: int, s: int) -> int:
  """Per target position: 2 causal ConvSteps (kernel 5), causal self-attention over t
  positions, attention to s memory positions (the memory's keys/values are counted apart)."""
  d = hp.hidden_size
  convs = 2 * _sep_conv(d, 5)
  self_attention = 2 * d * d * 4 + 2 * 2 * t * d       # q, k, v, out; logits and context
  memory_attention = 2 * d * d * 2 + 2 * 2 * s * d     # q, out; logits and context
  return convs + self_attention + memory_attention


def forward_flops(hp, batch: int, s: int, t: int) -> int:
  """Forward FLOPs of a text-to-text MultiModel on [batch, s] inputs and [batch, t] targets."""
  d = hp.hidden_size
  encoder = hp.num_encoder_blocks * _conv_block(hp) + (_moe(hp) if hp.use_moe else 0)
  blocks = hp.num_mixer_blocks + hp.num_decoder_blocks
  attentions = (1 + hp.num_decoder_blocks) if hp.use_attention else 0
  memory = attentions * 2 * d * 2 * d                   # keys and values of each block, per s
  target = (blocks * _conv_block(hp) + attentions * _attention_block(hp, t, s)
            + (_moe(hp) if hp.use_moe else 0) + 2 * d * hp.vocab_size)
  return batch * (s * (encoder + memory) + t * target)


def _batches(hp, data_dir: str, count: int) -> tuple[list[dict], str]:
  problem = PROBLEMS.get(PROBLEM)
  try:
    dataset = inputs.problem_dataset(problem, "train", data_dir, hp, training=True, seed=0)
    return [batch for batch in dataset.take(count)], f"{PROBLEM} batches from {data_dir}"
  except DataNotFoundError:
    rng = tf.random.Generator.from_seed(0)
    batches = [{"inputs": rng.uniform([hp.batch_size, s], 3, hp.vocab_size, tf.int32),
                "targets": rng.uniform([hp.batch_size, t], 3, hp.vocab_size, tf.int32)}
               for s, t in (SYNTHETIC_SHAPES * count)[:count]]
    return batches, f"synthetic batches ({data_dir} has no {PROBLEM} data)"


def _check_count(model, hp, shape) -> None:
  """Prints the profiler's float_ops of the forward graph at static shapes next to the analytic
  count. The MoE experts run inside a while loop, which the profiler cannot see into: their
  k * 4 * D * F FLOPs per token are added analytically."""
  b, s, t = shape
  forward = tf.function(lambda x, y: model({"inputs": x, "targets": y}, problem=PROBLEM,
                                           training=True))
  graph = forward.get_concrete_function(tf.TensorSpec([b, s], tf.int32),
                                        tf.TensorSpec([b, t], tf.int32)).graph
  options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
  options["output"] = "none"
  counted = tf.compat.v1.profiler.profile(graph, options=options).total_float_ops
  experts = b * (s + t) * hp.moe_k * 4 * hp.hidden_size * hp.filter_size if hp.use_moe else 0
  analytic = forward_flops(hp, b, s, t)
  print(f"  forward FLOPs of {shape}: graph count + MoE experts {(counted + experts) / 1e9:.2f} G, "
        f"analytic {analytic / 1e9:.2f} G ({analytic / (counted + experts) - 1:+.1%})", flush=True)


def train_step_fn(model, optimizer, hp, problem: str, spec, jit: bool = False):
  """The trainer's step for one replica (Trainer._replica_step), as one tf.function."""

  def step(batch):
    with tf.GradientTape() as tape:
      logits = model(batch, problem=problem, training=True)
      loss, _ = model.problem_loss(problem, batch, logits)
      if model.losses:
        loss += tf.add_n(model.losses)
    variables = model.trainable_variables
    pairs = [(g, v) for g, v in zip(tape.gradient(loss, variables), variables) if g is not None]
    grads = [tf.convert_to_tensor(g) for g, _ in pairs]
    if hp.clip_grad_norm > 0:
      grads, _ = tf.clip_by_global_norm(grads, hp.clip_grad_norm)
    optimizer.apply(grads, [v for _, v in pairs])
    return loss

  return tf.function(step, input_signature=[spec], jit_compile=jit)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", default="data/mm8_mini")
  parser.add_argument("--hparams_set", default="multimodel_base")
  parser.add_argument("--hparams", default="", help="overrides, e.g. batch_size=128")
  parser.add_argument("--batches", type=int, default=3, help="distinct batches per round")
  parser.add_argument("--repeats", type=int, default=3, help="rounds of (steps, matmuls)")
  parser.add_argument("--jit", action="store_true", help="jit_compile the train step")
  parser.add_argument("--check_count", action="store_true",
                      help="also count the forward FLOPs of the first batch on the graph")
  args = parser.parse_args(argv)
  print(common.machine_note(), flush=True)
  hp = get_hparams(args.hparams_set, args.hparams)
  batches, source = _batches(hp, args.data_dir, args.batches)
  problem = PROBLEMS.get(PROBLEM)
  keras.utils.set_random_seed(0)
  model = MultiModel(hp, [problem.signature()])
  model.build_all()
  optimizer = optimization.make_optimizer(hp)
  optimizer.build(model.trainable_variables)
  spec = {key: tf.TensorSpec([None, None], tf.int32) for key in ("inputs", "targets")}
  step = train_step_fn(model, optimizer, hp, PROBLEM, spec, jit=args.jit)
  shapes = [tuple(batch["inputs"].shape) + (batch["targets"].shape[1],) for batch in batches]
  flops = 3 * sum(forward_flops(hp, b, s, t) for b, s, t in shapes)
  real = sum(float(tf.reduce_sum(tf.cast(batch[k] > 0, tf.float32)))
             for batch in batches for k in ("inputs", "targets"))
  positions = sum(b * (s + t) for b, s, t in shapes)
  print(f"{args.hparams_set}{' ' + args.hparams if args.hparams else ''}, {source}: "
        f"[batch, inputs, targets] {shapes}, {real / positions:.0%} of positions real; "
        f"{flops / 1e9:.0f} GFLOP per round (analytic count, 3x forward)", flush=True)
  if args.check_count:
    _check_count(model, hp, shapes[0])
  start = time.perf_counter()
  for batch in batches:  # trace (once: the signature has no static lengths) and warm up
    common._block(step(batch))
  print(f"  trace + first pass {time.perf_counter() - start:.1f} s", flush=True)
  step_times, matmul_rates = [], []
  for _ in range(args.repeats):
    start = time.perf_counter()
    for batch in batches:
      common._block(step(batch))
    step_times.append(time.perf_counter() - start)
    matmul_rates.append(common.matmul_flops_per_second(2048))
  model_rate = flops / statistics.median(step_times)
  ceiling = statistics.median(matmul_rates)
  print(f"  train steps: {model_rate / 1e9:.1f} GFLOP/s (median of {args.repeats} rounds, "
        f"{statistics.median(step_times) / len(batches):.2f} s/step); matmul 2048^3 fp32: "
        f"{ceiling / 1e9:.1f} GFLOP/s (rounds: "
        f"{', '.join(f'{r / 1e9:.0f}' for r in matmul_rates)})", flush=True)
  print(f"  with the fastest matmul round as the ceiling (conservative under load): "
        f"{model_rate / max(matmul_rates):.3f}", flush=True)
  common.print_figure("mfu", model_rate / ceiling)
  return 0


if __name__ == "__main__":
  sys.exit(main())
