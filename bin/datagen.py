"""mm-datagen: builds the shared vocabulary and sharded TFRecords for problems or a mixture.

  mm-datagen --problems=mm8_mini --data_dir=~/mm_data [--tmp_dir=DIR]
"""

from __future__ import annotations

import os

from absl import flags

from t2t_multimodel import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("problems", None, "Comma-separated problems or a mixture, e.g. mm8_mini.")
flags.DEFINE_string("data_dir", None, "Where shards and the vocabulary are written.")
flags.DEFINE_string("tmp_dir", None, "Raw data and scratch space (default: <data_dir>/tmp). "
                    "Full-data problems look for their data sets here.")


def main():
  cli.require(FLAGS.problems, "problems")
  cli.require(FLAGS.data_dir, "data_dir")
  from t2t_multimodel import problems
  from t2t_multimodel.data import datagen  # after flag checks: fast --help
  selected = problems.resolve(FLAGS.problems)
  data_dir = os.path.expanduser(FLAGS.data_dir)
  tmp_dir = os.path.expanduser(FLAGS.tmp_dir) if FLAGS.tmp_dir else None
  manifests = datagen.generate(selected, data_dir, tmp_dir)
  for name, manifest in manifests.items():
    counts = ", ".join(f"{split}={n}" for split, n in manifest["counts"].items())
    leaked = manifest.get("leaked_targets")
    leaks = f"; targets found in training text: test={leaked['test']}, dev={leaked['dev']}" if leaked else ""
    print(f"{name}: {counts}{leaks}")


def run():
  cli.run("mm-datagen", main)


if __name__ == "__main__":
  run()
