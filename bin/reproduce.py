"""The paper's Tables 2-4 in miniature: mm-trainer runs, then reports/paper_tables.md + plots.

  python -m t2t_multimodel.bin.reproduce --data_dir=data/mm8_mini --out_dir=reports [--smoke]
         [--steps_per_problem=300 --seeds=0,1 --jobs=1]
         [--problems=image_digits,translate_ende_bible --tables=2,4]
"""

from __future__ import annotations

import sys
import time

from absl import flags

from t2t_multimodel import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", "data/mm8_mini", "mm-datagen's output for the problems.")
flags.DEFINE_string("out_dir", "reports", "Where paper_tables.md and its plots go.")
flags.DEFINE_string("runs_dir", None, "The runs' folder (default runs/reproduce, or "
                    "runs/reproduce_smoke with --smoke).")
flags.DEFINE_boolean("smoke", False, "A handful of steps (4 per problem) of a "
                     "cut-down model, 2 jobs at a time: checks the pipeline in minutes.")
flags.DEFINE_list("problems", None, "A subset of mm8_mini's problems (default: all 8).")
flags.DEFINE_list("tables", ["2", "3", "4"], "Which of the paper's tables to reproduce.")
flags.DEFINE_list("seeds", ["0", "1"], "One run per configuration and seed.")
flags.DEFINE_integer("steps_per_problem", None, "Training batches per problem in every run "
                     "(default 300; 4 with --smoke).", lower_bound=1)
flags.DEFINE_string("hparams_set", "multimodel_tiny", "The hparam set of every run.")
flags.DEFINE_string("hparams", None, "Overrides for every run; an ablation adds its own "
                    "(default none; reproduce.SMOKE_HPARAMS with --smoke).")
flags.DEFINE_integer("jobs", None, "Runs at a time (default 1; 2 with --smoke).", lower_bound=1)


def settings_from_flags():
  from t2t_multimodel.paper import reproduce
  smoke = FLAGS.smoke
  unknown = sorted(set(FLAGS.problems or ()) - set(reproduce.MM8_MINI))
  if unknown:
    raise cli.UsageError(f"Unknown problems {unknown}: --problems takes a subset of "
                         f"{', '.join(reproduce.MM8_MINI)}.")
  try:
    tables, seeds = tuple(int(t) for t in FLAGS.tables), tuple(int(s) for s in FLAGS.seeds)
  except ValueError as e:
    raise cli.UsageError(f"--tables and --seeds take integers: {e}") from None
  if not set(tables) <= set(reproduce.TABLES) or not seeds:
    raise cli.UsageError(f"Expected --tables within 2,3,4 and at least one seed. "
                         f"Received: tables={tables}, seeds={seeds}")
  return reproduce.Settings(
      data_dir=FLAGS.data_dir, out_dir=FLAGS.out_dir,
      runs_dir=FLAGS.runs_dir or ("runs/reproduce_smoke" if smoke else "runs/reproduce"),
      problems=tuple(FLAGS.problems or reproduce.MM8_MINI), tables=tables, seeds=seeds,
      steps_per_problem=FLAGS.steps_per_problem or (4 if smoke else 300),
      hparams_set=FLAGS.hparams_set,
      hparams=FLAGS.hparams if FLAGS.hparams is not None else (
          reproduce.SMOKE_HPARAMS if smoke else ""), jobs=FLAGS.jobs or (2 if smoke else 1), smoke=smoke)


def main():
  """Trains what is missing, writes the tables and plots; exits 1 if a run failed."""
  from t2t_multimodel.paper import reproduce, tables  # matplotlib only once flags are checked
  settings, start = settings_from_flags(), time.perf_counter()
  runs = reproduce.plan(settings)
  failures = reproduce.execute(runs, settings)
  path = tables.write_report(settings, reproduce.table_configs(settings), runs)
  print(f"reproduce: wrote {path} in {time.perf_counter() - start:.0f} s", flush=True)
  if failures:
    print(f"reproduce: {len(failures)} runs failed; their rows are missing.", file=sys.stderr)
  return 1 if failures else 0


def run():
  cli.run("reproduce", main)


if __name__ == "__main__":
  run()
