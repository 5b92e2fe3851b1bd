"""mm-trainer: joint training of one MultiModel on several problems; a rerun resumes.

  mm-trainer --problems=mm8_mini --hparams_set=multimodel_tiny --data_dir=D --output_dir=O
             --train_steps=1500 [--hparams='k=v,..']
             [--mixing=proportional|uniform|temperature:T[,limit:K]|rates:PROBLEM=W,...]
  mm-trainer --registry_help
"""

from __future__ import annotations

from absl import flags

from t2t_multimodel import cli

FLAGS = flags.FLAGS
flags.DEFINE_string("problems", None, "Comma-separated problems or a mixture, e.g. mm8_mini.")
flags.DEFINE_string("hparams_set", None, "A registered hparam set, e.g. multimodel_tiny.")
flags.DEFINE_string("hparams", "", "Overrides of the set: 'k=v,k2=v2' (Python literals).")
flags.DEFINE_string("data_dir", None, "Where mm-datagen wrote the shards and the vocabulary.")
flags.DEFINE_string("output_dir", None, "Checkpoints, hparams.json, metrics.jsonl, TensorBoard.")
flags.DEFINE_integer("train_steps", None, "Total training steps (a rerun continues to this).", lower_bound=1)
flags.DEFINE_integer("eval_every", 1000, "Evaluate on dev every N steps (0: only at the end).", lower_bound=0)
flags.DEFINE_integer("eval_examples", 500, "Dev examples per problem in each periodic evaluation: a "
                     "fixed, seeded sample spread over the split (0: the whole split). The final "
                     "evaluation always scores whole dev and test splits.", lower_bound=0)
flags.DEFINE_list("final_eval_splits", ["dev", "test"], "Splits evaluated whole at the end of "
                  "training, as mm-evaluate does (empty: none).")
flags.DEFINE_integer("eval_steps", None, "Deprecated: --eval_examples=N*eval_batch_size.", lower_bound=0)
flags.DEFINE_integer("checkpoint_every", 500, "Save a checkpoint every N steps.", lower_bound=1)
flags.DEFINE_integer("keep_checkpoints", 3, "How many checkpoints to keep.", lower_bound=1)
flags.DEFINE_string("mixing", "proportional", "proportional, uniform or temperature:T, each optionally "
                    "followed by ,limit:K (sizes capped at K first, as T5 mixes); or rates:PROBLEM=W,... "
                    "with a weight for every problem.")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"],
                  "tf.distribute strategy; multi_worker reads the cluster from TF_CONFIG.")
flags.DEFINE_boolean("overwrite", False, "Delete a previous run in output_dir and start over.")
flags.DEFINE_integer("seed", 0, "Seeds weights, data order and the problem of each step.")
flags.DEFINE_boolean("registry_help", False, "List problems, mixtures, hparam sets and models.")


def registry_help() -> str:
  from t2t_multimodel.hparams import HPARAMS
  from t2t_multimodel.model.multimodel import MODELS
  from t2t_multimodel.problems import MIXTURES, PROBLEMS
  lines = ["Problems:"] + [f"  {problem.summary()}" for _, problem in PROBLEMS.items()]
  lines += ["Mixtures:"] + [f"  {name:28s} {', '.join(m.problem_names)}" for name, m in MIXTURES.items()]
  lines += ["Hparam sets:"] + [f"  {name:28s} {(fn.__doc__ or '').strip().splitlines()[0]}"
                               for name, fn in HPARAMS.items()]
  lines += ["Models:"] + [f"  {name}" for name in MODELS.names()]
  return "\n".join(lines)


def main():
  if FLAGS.registry_help:
    print(registry_help())
    return
  for name in ("problems", "hparams_set", "data_dir", "output_dir", "train_steps"):
    cli.require(FLAGS[name].value, name)
  from t2t_multimodel.run import distribute, run_config  # after flag checks: fast --help
  from t2t_multimodel.train import training
  config = run_config.resolve_config(
      problems=FLAGS.problems, hparams_set=FLAGS.hparams_set, hparams=FLAGS.hparams,
      data_dir=FLAGS.data_dir, output_dir=FLAGS.output_dir, train_steps=FLAGS.train_steps,
      mixing=FLAGS.mixing, eval_every=FLAGS.eval_every, eval_examples=FLAGS.eval_examples,
      eval_steps=FLAGS.eval_steps, final_eval_splits=tuple(FLAGS.final_eval_splits),
      checkpoint_every=FLAGS.checkpoint_every, keep_checkpoints=FLAGS.keep_checkpoints,
      seed=FLAGS.seed, overwrite=FLAGS.overwrite)
  strategy = distribute.make_strategy(FLAGS.strategy)  # before any TensorFlow op
  training.check_data(config)
  training.train(config, strategy)


def run():
  cli.run("mm-trainer", main)


if __name__ == "__main__":
  run()
