"""Forward+backward time of the sparse MixtureOfExperts over a dense FFN of equal FLOPs per token.

  python benchmarks/moe_vs_dense.py [--repeats=5] [--padded]

The MoE layer (16 experts, k=2, filter 2,048) on 8,192 tokens of width 512, training mode (noisy
gating, balancing loss), with small random gate weights so that routing is near-uniform as after
load balancing; the dense layer is ReLU(x W1 + b1) W2 + b2 with filter 2 * 2,048, i.e. the same
FLOPs per token. Both run as one tf.function computing the loss and the gradients of all weights
and of the input, with and without jit_compile (the dropless MoE's data-dependent group sizes do
not compile with XLA); each layer's faster variant enters the ratio. The MoE runs its default
dispatch ("auto": "loop" on CPU); with --padded, the "padded" dispatch is timed too.
Then the same ratio for 60 and 240 experts on 4,096 tokens (the paper's sizes: each expert sees
about 4,096 * 2 / E tokens, 34 at E = 240), and for 60 experts with the "capacity" dispatch
(capacity factor 1.25: [60, 171, 512] buffers, static shapes, so it also runs with jit_compile;
the share of assignments it drops is printed). The variants take turns within each of `--repeats`
rounds after warm-up; figures are ratios of medians, with the spread of the per-round ratios,
all measured in this one run; a `bound:` line says what limits the 60 and 240-expert ratios
(expert weight traffic, not FLOPs), and `moe_vs_balanced_240` sets the 240-expert layer against
`BalancedExperts`, the same expert weights with routing solved in advance (a pre-sorted, perfectly
balanced batched matmul): what the weight traffic alone costs. The last lines are `name=value`.
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.get_logger().setLevel("ERROR")  # No retracing warnings: each variant is its own tf.function.

from benchmarks import common  # noqa: E402
from t2t_multimodel.layers.moe import MixtureOfExperts  # noqa: E402

HIDDEN, FILTER, K = 512, 2048, 2
CAPACITY_FACTOR = 1.25  # the "capacity" dispatch's; its layer has the same weights as "moe60".


class DenseFFN(keras.layers.Layer):
  """ReLU(x W1 + b1) W2 + b2, the dense baseline."""

  def __init__(self, filter_size: int, **kwargs):
    super().__init__(**kwargs)
    self.hidden = keras.layers.Dense(filter_size, activation="relu")
    self.out = None

  def build(self, input_shape):
    self.out = keras.layers.Dense(input_shape[-1])
    self.hidden.build(input_shape)
    self.out.build((*input_shape[:-1], self.hidden.units))

  def call(self, x, training=False):
    return self.out(self.hidden(x))  # [B, T, D]


class BalancedExperts(keras.layers.Layer):
  """The MoE's expert work with routing solved in advance: each token's k copies pre-sorted into
  E equal groups (ceil(N * k / E) rows each; the few rows past N * k are zeros), one batched matmul
  [E, rows, D] x [E, D, F] -> ReLU -> [E, F, D], each token's k outputs summed. The same expert
  weight shapes as a MixtureOfExperts of E experts, and no gating, sorting or gathering: the limit
  that streaming E experts' weights sets."""

  def __init__(self, num_experts: int, k: int, filter_size: int, **kwargs):
    super().__init__(**kwargs)
    self.num_experts, self.k, self.filter_size = num_experts, k, filter_size

  def build(self, input_shape):
    e, d, f = self.num_experts, input_shape[-1], self.filter_size
    init = keras.initializers.GlorotUniform(seed=0)
    self.w1 = self.add_weight(shape=(e, d, f), initializer=init, name="w1")
    self.b1 = self.add_weight(shape=(e, 1, f), initializer="zeros", name="b1")
    self.w2 = self.add_weight(shape=(e, f, d), initializer=init, name="w2")
    self.b2 = self.add_weight(shape=(e, 1, d), initializer="zeros", name="b2")

  def call(self, x, training=False):
    shape, d = tf.shape(x), x.shape[-1]
    tokens = tf.reshape(x, [-1, d])                                        # [N, D]
    n = tokens.shape[0]
    rows = -(-n * self.k // self.num_experts)                              # per expert
    copies = tf.repeat(tokens, self.k, axis=0)                             # [N * k, D]
    copies = tf.pad(copies, [[0, rows * self.num_experts - n * self.k], [0, 0]])
    groups = tf.reshape(copies, [self.num_experts, rows, d])               # [E, rows, D]
    hidden = tf.nn.relu(tf.matmul(groups, self.w1) + self.b1)              # [E, rows, F]
    out = tf.reshape(tf.matmul(hidden, self.w2) + self.b2, [-1, d])        # [E * rows, D]
    y = tf.reduce_sum(tf.reshape(out[:n * self.k], [n, self.k, d]), axis=1)  # [N, D]
    return tf.reshape(y, shape)


def _step_fn(layer, jit: bool):
  """tf.function: loss = mean(y^2) + layer losses; gradients of all weights and of x."""

  def step(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x, training=True)  # [B, T, D]
      loss = tf.reduce_mean(tf.square(y)) + tf.add_n([0.0] + layer.losses)
    return tape.gradient(loss, [x] + layer.trainable_variables)

  return tf.function(step, jit_compile=jit)


def _variants(layers: dict, x) -> dict:
  """name -> warmed-up step function, for each layer with and without jit_compile."""
  steps = {}
  for label, layer in layers.items():
    for jit in (False, True):
      name = f"{label} jit={'on' if jit else 'off'}"
      step = _step_fn(layer, jit)
      try:
        for _ in range(2):  # Warm-up: tracing, compilation, allocator.
          common._block(step(x))
      except (tf.errors.OpError, ValueError, TypeError) as error:
        first_line = str(error).strip().splitlines()[0][:60]
        print(f"  {name:<30} n/a ({type(error).__name__}: {first_line})", flush=True)
        continue
      steps[name] = step
  return steps


def _measure(steps: dict, x, repeats: int) -> dict:
  """name -> list of seconds; the variants take turns, so a load change hits all alike."""
  times = {name: [] for name in steps}
  for _ in range(repeats):
    for name, step in steps.items():
      start = time.perf_counter()
      common._block(step(x))
      times[name].append(time.perf_counter() - start)
  for name, seconds in times.items():
    print(f"  {name:<30} median {statistics.median(seconds) * 1e3:8.1f} ms  "
          f"(min {min(seconds) * 1e3:.1f}, max {max(seconds) * 1e3:.1f}, n={len(seconds)})",
          flush=True)
  return times


def _best(times: dict, prefix: str) -> list[float]:
  """The times of the variant of `prefix` with the smallest median."""
  return min((t for name, t in times.items() if name.startswith(prefix)), key=statistics.median)


def _ratio(times: dict, moe: str, dense: str) -> float:
  """Median ratio of the best variants, printed with the spread of the per-round ratios."""
  moe_times, dense_times = _best(times, moe), _best(times, dense)
  per_round = sorted(m / d for m, d in zip(moe_times, dense_times))
  ratio = statistics.median(moe_times) / statistics.median(dense_times)
  print(f"  {moe} / {dense}: {ratio:.3f} (per-round ratios {per_round[0]:.3f} .. "
        f"{per_round[-1]:.3f})", flush=True)
  return ratio


def _moe(num_experts: int, x, dispatch: str = "auto") -> MixtureOfExperts:
  """A built MoE layer whose small random gate weights route tokens near-uniformly."""
  moe = MixtureOfExperts(num_experts, K, FILTER, seed=0, dispatch=dispatch,
                         capacity_factor=CAPACITY_FACTOR)
  moe.build(x.shape)
  moe.gate_kernel.assign(tf.random.normal(moe.gate_kernel.shape, stddev=0.01, seed=1))
  return moe


def _capacity_note(moe: MixtureOfExperts, x) -> str:
  """The buffer size and the share of assignments dropped in one training-mode forward pass."""
  moe(x, training=True)
  n = x.shape[0] * x.shape[1]
  return (f"  capacity: {moe.capacity(n)} rows per expert (factor {moe.capacity_factor}); "
          f"{float(moe.last_dropped_fraction):.2%} of the assignments dropped in training")


def _dense(x) -> DenseFFN:
  dense = DenseFFN(K * FILTER)
  dense.build(x.shape)
  return dense


def _tokens(n: int):
  return tf.random.normal([n // 512, 512, HIDDEN], seed=0)  # [B, T, D]


def _bound_note() -> str:
  """What bounds the many-expert ratios: each expert's weights serve only a few rows."""
  parts = []
  for e, tokens in ((16, 8192), (60, 4096), (240, 4096)):
    rows = tokens * K / e
    gigabytes = e * 2 * HIDDEN * FILTER * 4 / 1e9
    parts.append(f"E={e}: ~{rows:.0f} rows per expert, {rows / 2:.0f} FLOP per weight byte, "
                 f"{gigabytes:.2f} GB of expert weights")
  return ("  bound: at many experts the MoE streams its expert weights, not its FLOPs: "
          + "; ".join(parts) + " (dense: 2,048 at 4,096 tokens). A step reads "
          "every expert's weights forward and backward and writes and stacks their gradients, "
          "and loops 2 x E times over small matmuls: the 60/240-expert ratios are bound by that "
          "weight traffic and per-expert overhead, not by FLOPs (equal to the dense layer's).")


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--padded", action="store_true",
                      help="also time the 16-expert MoE with dispatch='padded' (adds ~20 s)")
  args = parser.parse_args(argv)
  print(common.machine_note(), flush=True)
  x = _tokens(8192)
  moe = _moe(16, x)
  print(f"8192 tokens, D={HIDDEN}; moe: 16 experts, k={K}, F={FILTER}, dispatch "
        f"{moe.dispatch_mode()!r}; dense: F={K * FILTER}", flush=True)
  layers = {"moe16": moe, "dense": _dense(x)}
  if args.padded:
    layers["moe16 padded"] = _moe(16, x, "padded")
  times = _measure(_variants(layers, x), x, args.repeats)
  ratio = _ratio(times, "moe16 jit", "dense")
  if args.padded:
    _ratio(times, "moe16 padded", "dense")
  del layers, moe
  gc.collect()  # Frees the first layers' weights before the 2 GB of the 240 experts.
  x = _tokens(4096)
  print(f"4096 tokens, the paper's expert counts (each expert sees ~{4096 * K // 240} tokens at "
        f"240):", flush=True)
  capacity = _moe(60, x, "capacity")
  print(_capacity_note(capacity, x), flush=True)
  balanced = BalancedExperts(240, K, FILTER)
  balanced.build(x.shape)
  steps = _variants({"moe60": _moe(60, x), "moe240": _moe(240, x), "moe60 capacity": capacity,
                     "balanced240": balanced, "dense": _dense(x)}, x)
  times = _measure(steps, x, args.repeats)
  ratio_60, ratio_240 = _ratio(times, "moe60 jit", "dense"), _ratio(times, "moe240", "dense")
  ratio_capacity = _ratio(times, "moe60 capacity", "dense")
  ratio_balanced = _ratio(times, "moe240", "balanced240")
  print(_bound_note(), flush=True)
  common.print_figure("moe_vs_dense_60", ratio_60)
  common.print_figure("moe_capacity_vs_dense_60", ratio_capacity)
  common.print_figure("moe_vs_dense_240", ratio_240)
  common.print_figure("moe_vs_balanced_240", ratio_balanced)
  common.print_figure("moe_vs_dense", ratio)
  return 0


if __name__ == "__main__":
  sys.exit(main())
