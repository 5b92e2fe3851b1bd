"""input_pipeline_headroom: batches/s of the tf.data pipeline alone over training steps/s.

For each problem of mm8_mini, then for the mixture drawn by the ProblemSampler
(proportional rates), with the multimodel_tiny hparams, after mm-datagen:

  python benchmarks/input_pipeline.py [--data_dir=data/mm8_mini] [--problems=mm8_mini] [--seconds=3]

The pipeline is warmed up first (one pass over each train split fills its
in-memory cache), so its figures are the steady state a long training run sees.
Then the trainer's joint train steps (`training.Trainer`: one compiled step per
problem, problems drawn by the same sampler) run on batches from those warm
pipelines for about 2 x --seconds; each problem's first two steps (tracing, first
run) are warm-up, left out of the figure, so only the problems drawn are traced. The lines
`input_pipeline_batches_per_s=` (mixed) and `input_pipeline_headroom=` (mixed
batches/s over train steps/s, both measured in this run) close the output.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from t2t_multimodel.data import inputs, mixing  # noqa: E402
from t2t_multimodel.data.data_dir import DataNotFoundError, dataset_sizes  # noqa: E402
from t2t_multimodel.hparams.multimodel import multimodel_tiny  # noqa: E402
from t2t_multimodel.run import run_config
from t2t_multimodel.train import training


def _rate(next_batch, seconds: float) -> float:
  """Batches per second of `next_batch()` over about `seconds`."""
  count, start = 0, time.perf_counter()
  while (elapsed := time.perf_counter() - start) < seconds or count < 10:
    next_batch()
    count += 1
  return count / elapsed


def _warm_up(iterator, examples: int, batch_size: int) -> None:
  """One epoch of batches, so the cache is filled and buffers are full."""
  for _ in range(examples // batch_size + 2):
    next(iterator)


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", default="data/mm8_mini")
  parser.add_argument("--problems", default="mm8_mini", help="problems or a mixture")
  parser.add_argument("--seconds", type=float, default=3.0, help="measuring time per figure")
  args = parser.parse_args(argv)
  from t2t_multimodel import problems  # the registry; imported after the flags are parsed
  selected = problems.resolve(args.problems)
  try:
    sizes = dataset_sizes(selected, args.data_dir)
  except DataNotFoundError:
    print(f"No {args.problems} data in {args.data_dir}: run mm-datagen --problems={args.problems} "
          f"--data_dir={args.data_dir}", file=sys.stderr)
    return 2
  hp = multimodel_tiny()
  iterators = {}
  for problem in selected:
    dataset = inputs.problem_dataset(problem, "train", args.data_dir, hp, training=True, seed=0)
    iterators[problem.name] = iter(dataset)
    start = time.perf_counter()
    _warm_up(iterators[problem.name], sizes[problem.name], hp.batch_size)
    warm = time.perf_counter() - start
    rate = _rate(lambda it=iterators[problem.name]: next(it), args.seconds)
    print(f"{problem.name:24s} {rate:10.1f} batches/s   (first epoch {warm:6.1f} s, "
          f"{sizes[problem.name]} examples)")
  sampler = mixing.ProblemSampler(mixing.mixing_rates(sizes, "proportional"), seed=0)
  step = 0

  def next_mixed():
    nonlocal step
    next(iterators[sampler.problem_at(step)])
    step += 1

  mixed = _rate(next_mixed, args.seconds)
  print(f"{'mixed (proportional)':24s} {mixed:10.1f} batches/s   ({os.cpu_count()} CPUs)",
        flush=True)
  steps = _train_steps_per_second(args, iterators, sampler, 2 * args.seconds)
  print(f"{'train steps (joint)':24s} {steps:10.1f} steps/s     (multimodel_tiny, the trainer's "
        f"compiled step per problem)")
  print(f"input_pipeline_batches_per_s={mixed:.1f}")
  print(f"input_pipeline_headroom={mixed / steps:.1f}")
  return 0


def _train_steps_per_second(args, iterators: dict, sampler, seconds: float) -> float:
  """Joint train steps/s of the real Trainer's compiled steps, fed by the warm `iterators`.

  Steps follow the sampler from step 0 for about `seconds` of warm steps: a problem's first two
  steps (tracing, first run) are warm-up, left out of the figure; so only problems drawn are traced.
  """
  with tempfile.TemporaryDirectory() as output_dir:
    config = run_config.resolve_config(problems=args.problems, hparams_set="multimodel_tiny",
                                       data_dir=args.data_dir, output_dir=output_dir,
                                       train_steps=1)
    trainer = training.Trainer(config)
  calls = {name: 0 for name in iterators}
  step, warm_steps, warm_seconds, warm_up_seconds = 0, 0, 0.0, 0.0
  while warm_seconds < seconds or warm_steps < 10:
    name = sampler.problem_at(step)
    step_fn = trainer._train_fn(name, iterators[name].element_spec)
    start = time.perf_counter()
    float(step_fn(next(iterators[name]))[0])  # the trainer blocks on each step's loss too
    elapsed = time.perf_counter() - start
    step, calls[name] = step + 1, calls[name] + 1
    if calls[name] <= 2:
      warm_up_seconds += elapsed
    else:
      warm_steps, warm_seconds = warm_steps + 1, warm_seconds + elapsed
  drawn = ", ".join(f"{name} {count}" for name, count in calls.items() if count)
  print(f"{'(joint steps drawn)':24s} {step:10d} steps     ({drawn}; the first two of each, "
        f"{warm_up_seconds:.0f} s, are warm-up)", flush=True)
  return warm_steps / warm_seconds

if __name__ == "__main__":
  sys.exit(main())
