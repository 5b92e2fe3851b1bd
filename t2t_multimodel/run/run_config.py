"""A training run's configuration, resolved and validated before any training starts.

`resolve_config` turns the trainer's flags into a `RunConfig`, checking everything that can be
checked without reading the data: problem and mixture names, the hparam set and its overrides,
the model name, the mixing rule, that every problem has data in data_dir (its manifest), that the
data's vocabulary is the one its shards were written with and fits the model, and that
output_dir holds no other run. Every failure is a UserError with one line, which the CLI prints
without a traceback. It runs no TensorFlow op, so a MultiWorkerMirroredStrategy can still be made
afterwards.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from t2t_multimodel import hparams as hparams_lib, problems as problems_lib
from t2t_multimodel.data import shards
from t2t_multimodel.data.data_dir import data_record, dataset_sizes, read_manifest
from t2t_multimodel.data.mixing import mixing_rates
from t2t_multimodel.errors import UserError
from t2t_multimodel.hparams.base import HParams, HParamsError
from t2t_multimodel.model.multimodel import MODELS
from t2t_multimodel.problem import Problem, SPLITS
from t2t_multimodel.run import run_dir
from t2t_multimodel.vocab import load_vocab


class ConfigError(UserError, ValueError):
  """A bad training setting (a count out of range)."""


@dataclasses.dataclass(frozen=True)
class RunConfig:
  """Everything a training run needs, resolved.

  Attributes:
    spec: the --problems value ("mm8_mini" or "a,b").
    problems: the problems, in order.
    hparams: the resolved hparams.
    rates: problem name -> sampling rate (from the mixing rule and the train-set sizes).
    vocab_sha256: the sha256 of the data dir's vocabulary (None without text problems).
    eval_examples: the size of the fixed, seeded dev sample of each periodic evaluation
      (0: the whole split); the final evaluation always covers whole splits.
    final_eval_splits: the splits evaluated whole at the end of training (none: only train).
    The rest are the trainer's flags of the same names.
  """

  spec: str
  problems: tuple[Problem, ...]
  hparams: HParams
  data_dir: str
  output_dir: str
  train_steps: int
  rates: dict[str, float]
  vocab_sha256: str | None
  mixing: str = "proportional"
  eval_every: int = 1000
  eval_examples: int = 500
  final_eval_splits: tuple[str, ...] = ("dev", "test")
  checkpoint_every: int = 500
  keep_checkpoints: int = 3
  log_every: int = 25
  seed: int = 0
  overwrite: bool = False

  def record(self) -> dict[str, Any]:
    """The content of the run's problems.json."""
    return run_dir.problems_record(self.spec, [p.signature() for p in self.problems], self.mixing,
                                   self.rates, self.seed, self.vocab_sha256, self.data_dir,
                                   data=data_record(self.problems, self.data_dir))


def resolve_config(*, problems: str, hparams_set: str, data_dir: str, output_dir: str,
                   train_steps: int, hparams: str = "", mixing: str = "proportional",
                   eval_every: int = 1000, eval_examples: int = 500, checkpoint_every: int = 500,
                   keep_checkpoints: int = 3, log_every: int = 25, seed: int = 0,
                   overwrite: bool = False, eval_steps: int | None = None,
                   final_eval_splits: tuple[str, ...] = ("dev", "test")) -> RunConfig:
  """The trainer's flags -> a validated RunConfig (see the module docstring for the checks).

  `eval_steps` (deprecated, the older flag) asks for eval_steps * eval_batch_size dev examples.

  Example:
    >>> config = resolve_config(problems="image_digits", hparams_set="multimodel_tiny",
    ...                         data_dir="data", output_dir="runs/digits", train_steps=300)
  """
  _check_counts(train_steps=train_steps, eval_every=eval_every, eval_examples=eval_examples,
                checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints,
                log_every=log_every, **({} if eval_steps is None else {"eval_steps": eval_steps}))
  selected = tuple(problems_lib.resolve(problems))
  hp = hparams_lib.get_hparams(hparams_set, hparams)
  if eval_steps is not None:
    eval_examples = eval_steps * hp.eval_batch_size
  MODELS.get(hp.model)
  data_dir, output_dir = os.path.expanduser(data_dir), os.path.expanduser(output_dir)
  if not os.path.isdir(data_dir):
    raise FileNotFoundError(f"No data dir {data_dir}: run mm-datagen --problems={problems} "
                            f"--data_dir={data_dir} first.")
  rates = mixing_rates(dataset_sizes(selected, data_dir), mixing)
  config = RunConfig(
      spec=problems, problems=selected, hparams=hp, data_dir=data_dir, output_dir=output_dir,
      train_steps=train_steps, rates=rates, vocab_sha256=_check_vocab(selected, hp, data_dir),
      mixing=mixing, eval_every=eval_every, eval_examples=eval_examples,
      final_eval_splits=_check_splits(final_eval_splits),
      checkpoint_every=checkpoint_every, keep_checkpoints=keep_checkpoints, log_every=log_every,
      seed=seed, overwrite=overwrite)
  if not overwrite:
    _check_existing_run(config)
  return config


def _check_splits(splits) -> tuple[str, ...]:
  unknown = [split for split in splits if split not in SPLITS]
  if unknown:
    raise ConfigError(f"Unknown split {unknown[0]!r} in --final_eval_splits. Known splits: "
                      f"{', '.join(SPLITS)}")
  return tuple(splits)


def _check_counts(**counts: int) -> None:
  minimum = {"train_steps": 1, "checkpoint_every": 1, "keep_checkpoints": 1, "log_every": 1}
  for name, value in counts.items():
    if value < minimum.get(name, 0):
      raise ConfigError(f"Expected --{name} >= {minimum.get(name, 0)}. Received: {name}={value}")


def _check_vocab(selected: tuple[Problem, ...], hp: HParams, data_dir: str) -> str | None:
  """The sha256 of the data dir's vocabulary; VocabMismatchError if a problem's shards used
  another one; HParamsError if it has more pieces than the model's vocab_size."""
  text_problems = [p for p in selected if p.has_text]
  if not text_problems:
    return None
  vocab = load_vocab(data_dir)
  for problem in text_problems:
    written_with = read_manifest(problem, data_dir).get("vocab_sha256")
    if written_with and written_with != vocab.sha256:
      raise shards.VocabMismatchError(
          f"The shards of {problem.name} in {data_dir} were written with another vocabulary "
          f"(sha256 {written_with[:12]}) than {data_dir}'s (sha256 {vocab.sha256[:12]}): rerun "
          f"mm-datagen --problems={problem.name} --data_dir={data_dir}")
  if vocab.size > hp.vocab_size:
    raise HParamsError(f"Expected `vocab_size` >= the vocabulary's {vocab.size} pieces. "
                       f"Received: vocab_size={hp.vocab_size}")
  return vocab.sha256


def _check_existing_run(config: RunConfig) -> None:
  """VocabMismatchError / RunDirMismatchError if output_dir holds another run."""
  path = os.path.join(config.output_dir, run_dir.PROBLEMS_FILE)
  if not os.path.exists(path):
    return
  shards.check_vocab(config.data_dir, run_dir.read_json(path).get("vocab_sha256"))
  run_dir.prepare(config.output_dir, config.hparams, config.record(), write=False)
