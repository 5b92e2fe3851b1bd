"""mm-evaluate: scores a trained run on a whole split, with beam 4 unless --beam_size says otherwise.

  mm-evaluate --output_dir=runs/demo --split=test [--beam_size=1 for greedy, as the trainer's own
                                                    final evaluation decodes]
  mm-evaluate --output_dir=runs/demo --split=test --rescore   # text metrics from stored decodes
Writes O/eval_<split>.json ({problem: {"examples", "metrics"}}) and O/eval_<split>_decodes.jsonl,
and prints a table. Everything but the split and the decoding comes from the run's output_dir.
"""

from __future__ import annotations

from absl import flags

from t2t_multimodel import cli, infer

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "The mm-trainer run to evaluate.")
flags.DEFINE_enum("split", "test", ["train", "dev", "test"], "The split, scored whole.")
infer.define_decoding_flags(__name__)
flags.DEFINE_string("data_dir", None, "The data (default: the run's own data dir).")
flags.DEFINE_string("checkpoint_path", None, "A checkpoint (default: the run's latest).")
flags.DEFINE_bool("rescore", False, "Recompute the text metrics of O/eval_<split>.json from its "
                  "stored decodes with this version's metrics (no model, no decoding).")


def main():
  cli.require(FLAGS.output_dir, "output_dir")
  from t2t_multimodel.evaluate import evaluator  # after flag checks: fast errors and --help
  from t2t_multimodel.run import run_dir
  if FLAGS.rescore:
    content = evaluator.rescore_run(FLAGS.output_dir, FLAGS.split)
  else:
    content = evaluator.evaluate_run(
        FLAGS.output_dir, FLAGS.split, beam_size=FLAGS.beam_size, alpha=FLAGS.alpha,
        max_length=FLAGS.max_length or None, data_dir=FLAGS.data_dir,
        checkpoint_path=FLAGS.checkpoint_path)
  print(evaluator.format_table(content))
  print(f"Written to {run_dir.eval_path(FLAGS.output_dir, FLAGS.split)}")


def run():
  cli.run("mm-evaluate", main)


if __name__ == "__main__":
  run()
