"""mm-report: the Markdown report of a training run, with its loss and metric plots beside it.

  mm-report --output_dir=runs/demo --report=reports/demo.md [--examples_dir=runs/demo/decoder]
            [--timings=runs/demo/timings.tsv] [--json=reports/demo.json] [--notes=NOTES.md] [--targets]
            [--compare=reports/train.json]
Everything comes from the run dir the trainer wrote; the plots are `<report stem>_loss.png` and
`<report stem>_metrics.png` (see t2t_multimodel/evaluate/report.py).
"""

from __future__ import annotations

from absl import flags

from t2t_multimodel import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "The mm-trainer run.")
flags.DEFINE_string("report", None, "The Markdown file to write.")
flags.DEFINE_string("examples_dir", None, "<problem>.in / <problem>.out pairs from mm-decoder.")
flags.DEFINE_string("timings", None, "TSV of stage<TAB>seconds.")
flags.DEFINE_string("json", None, "Where to write the final test figures as JSON.")
flags.DEFINE_string("notes", None, "A Markdown file appended to the report.")
flags.DEFINE_boolean("targets", False, "Add make train's quality targets.")
flags.DEFINE_string("compare", None, "Another run's --json file, whose figures are shown beside this run's.")


def main():
  cli.require(FLAGS.output_dir, "output_dir")
  cli.require(FLAGS.report, "report")
  from t2t_multimodel.evaluate import report  # after flag checks: fast errors and --help
  print(report.write_report(FLAGS.output_dir, FLAGS.report, FLAGS.examples_dir, FLAGS.timings,
                            FLAGS.json, FLAGS.notes, FLAGS.targets, FLAGS.compare))


def run():
  cli.run("mm-report", main)


if __name__ == "__main__":
  run()
