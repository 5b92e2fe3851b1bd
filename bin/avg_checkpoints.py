"""mm-avg-checkpoints: averages the model weights of a run's last checkpoints (T2T's t2t-avg-all).

  mm-avg-checkpoints --output_dir=runs/train --num_last=5
  mm-evaluate --output_dir=runs/train --checkpoint_path=runs/train/averaged/ckpt-12000
Writes O/averaged/ckpt-<newest step> (and a .json naming what it averages) and prints its path;
mm-evaluate, mm-decoder, mm-serve and mm-export load it with --checkpoint_path.
"""

from __future__ import annotations

from absl import flags

from t2t_multimodel import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "The mm-trainer run whose checkpoints are averaged.")
flags.DEFINE_integer("num_last", 5, "How many of the newest checkpoints to average.", lower_bound=1)
flags.DEFINE_string("checkpoint_dir", None, "Where the checkpoints are (default: the run's checkpoints/).")


def main():
  cli.require(FLAGS.output_dir, "output_dir")
  from t2t_multimodel.infer import averaging  # after flag checks: fast errors and --help
  print(averaging.average_checkpoints(FLAGS.output_dir, FLAGS.num_last, FLAGS.checkpoint_dir))


def run():
  cli.run("mm-avg-checkpoints", main)


if __name__ == "__main__":
  run()
