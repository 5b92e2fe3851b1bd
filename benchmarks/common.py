"""Shared helpers of the benchmark scripts: the machine note, timing, the matmul ceiling.

Every figure is a ratio of two timings taken in the same run on the same machine, printed as one
`name=value` line (besides any human-readable table).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from typing import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402


def machine_note() -> str:
  """Cores, CPU or GPU model, TF version: one line."""
  cpu = platform.processor() or platform.machine()
  try:
    with open("/proc/cpuinfo") as f:
      names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    cpu = names[0] if names else cpu
  except OSError:
    pass
  gpus = [tf.config.experimental.get_device_details(d).get("device_name", d.name)
          for d in tf.config.list_physical_devices("GPU")]
  device = f"GPU {', '.join(gpus)}" if gpus else "no GPU"
  return f"machine: {os.cpu_count()} cores, {cpu}, {device}, TensorFlow {tf.__version__}"


def time_fn(fn: Callable[[], object], warmup: int = 2, repeats: int = 5) -> float:
  """Median seconds of fn() (which must return something to block on)."""
  for _ in range(warmup):
    _block(fn())
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    _block(fn())
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def _block(result) -> None:
  for t in tf.nest.flatten(result):
    if hasattr(t, "numpy"):
      t.numpy()


def matmul_flops_per_second(n: int = 2048, dtype=tf.float32) -> float:
  """The machine's ceiling: FLOP/s of a large [n, n] x [n, n] matmul (2 n^3 FLOPs)."""
  a = tf.random.normal([n, n], dtype=dtype)
  b = tf.random.normal([n, n], dtype=dtype)
  matmul = tf.function(lambda: tf.matmul(a, b))
  seconds = time_fn(matmul, warmup=2, repeats=5)
  return 2.0 * n ** 3 / seconds


def print_figure(name: str, value: float, digits: int = 3) -> None:
  print(f"{name}={value:.{digits}f}", flush=True)


def step_timing_parser(doc: str) -> argparse.ArgumentParser:
  """The flags of the scripts that time training steps on the trainer's own batches."""
  parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--data_dir", default="data/mm8_mini")
  parser.add_argument("--hparams_set", default="multimodel_small")
  parser.add_argument("--batches", type=int, default=8, help="Training batches timed per round.")
  parser.add_argument("--rounds", type=int, default=5)
  return parser


def train_batches(problem: str, data_dir: str, hp, count: int):
  """(the first `count` training batches of `problem`, seed 0, in memory; the pipeline's dataset)."""
  from t2t_multimodel.data import inputs
  from t2t_multimodel.problems import get_problem
  dataset = inputs.problem_dataset(get_problem(problem), "train", data_dir, hp, training=True, seed=0)
  return list(dataset.take(count)), dataset

