"""Where a training step's time goes: the trainer's step with each block type taken out, in turns.

  python benchmarks/step_breakdown.py [--data_dir=data/mm8_mini] [--hparams_set=multimodel_small]
                                      [--problem=translate_ende_bible] [--batches=8] [--rounds=5]

The real trainer's compiled step (`Trainer._train_fn`: forward, loss, gradients, clipping, Adam)
is built for one problem under several variants of one hparam set, each a separate model:

  all            the set as it is
  no_moe         use_moe=False: the two mixture-of-experts layers removed
  no_attention   use_attention=False: the attention blocks removed (the target side then sees the
                 inputs through their masked mean)
  capacity       moe_dispatch=capacity: GShard-style fixed-capacity dispatch instead of dropless

All variants run the same in-memory batches (the trainer's own, so the input pipeline is not
timed), traced and warmed first, then `--rounds` rounds in turns so that a change of load hits
every variant. A variant's time is its median round. The figures:

  step_share.moe        1 - t(no_moe) / t(all): the share of a step the MoE layers take
  step_share.attention  1 - t(no_attention) / t(all)
  step_share.rest       t(no_moe) / t(all) - step_share.attention: convolutions, embeddings,
                        softmax, loss and the optimiser (an estimate: the two removals are taken
                        one at a time)
  capacity_over_dropless t(capacity) / t(all)
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from t2t_multimodel.hparams import get_hparams  # noqa: E402
from t2t_multimodel.run import run_config  # noqa: E402
from t2t_multimodel.train import training  # noqa: E402

VARIANTS = {"all": "", "no_moe": "use_moe=False", "no_attention": "use_attention=False",
            "capacity": "moe_dispatch='capacity'"}


def main(argv: list[str] | None = None) -> int:
  parser = common.step_timing_parser(__doc__)
  parser.add_argument("--problem", default="translate_ende_bible")
  args = parser.parse_args(argv)
  print(common.machine_note())
  hp = get_hparams(args.hparams_set)
  batches, dataset = common.train_batches(args.problem, args.data_dir, hp, args.batches)
  steps = {}
  for name, overrides in VARIANTS.items():
    with tempfile.TemporaryDirectory() as output_dir:
      config = run_config.resolve_config(problems=args.problem, hparams_set=args.hparams_set,
                                         hparams=overrides, data_dir=args.data_dir,
                                         output_dir=output_dir, train_steps=1)
      steps[name] = training.Trainer(config)._train_fn(args.problem, dataset.element_spec)

  seconds = {name: [] for name in steps}
  for round_index in range(args.rounds + 1):  # round 0 traces and warms every shape
    for name, step in steps.items():
      start = time.perf_counter()
      for batch in batches:
        float(step(batch)[0])  # block on the loss, as the trainer does
      if round_index:
        seconds[name].append(time.perf_counter() - start)
  median = {name: statistics.median(times) for name, times in seconds.items()}
  print(f"{args.hparams_set} on {args.batches} {args.problem} batches, {args.rounds} rounds:")
  for name, times in seconds.items():
    print(f"  {name:13s} median {median[name]:.2f} s per pass ({', '.join(f'{t:.2f}' for t in times)})")
  moe = 1.0 - median["no_moe"] / median["all"]
  attention = 1.0 - median["no_attention"] / median["all"]
  common.print_figure("step_share.moe", moe)
  common.print_figure("step_share.attention", attention)
  common.print_figure("step_share.rest", median["no_moe"] / median["all"] - attention)
  common.print_figure("capacity_over_dropless", median["capacity"] / median["all"])
  return 0


if __name__ == "__main__":
  sys.exit(main())
