"""The model learns through the real trainer: on a reverse task and on digits, the training loss
falls and the dev metric rises from one evaluation to the next (quality targets live in
reports/train.md and benchmarks/learning.py; these tests pin that learning happens at all)."""

import itertools
import random
from typing import Iterator

import numpy as np
import pytest

from t2t_multimodel.data import datagen
from t2t_multimodel.problem import CommandToken, Problem, Sample, validate_problem
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.run import run_dir
from t2t_multimodel.run.run_config import resolve_config
from t2t_multimodel.train import training

REVERSE_SIZES = {"train": 2000, "dev": 48, "test": 48}


class ReverseDigits(Problem):
  """T2T's algorithmic_reverse in words: "3 1 4 1" -> "1 4 1 3", 4 to 9 digits, seeded per split;
  no held-out string occurs in a training string, either way round.

  A test-only problem: it reuses TO_ENGLISH as its command, since a new command token would change
  the model's command embedding (and every checkpoint's shape) for a task no user trains.
  """

  name = "test_reverse_digits"
  command = CommandToken.TO_ENGLISH
  metrics = ("accuracy", "wer")
  description = "reverse 3-8 random digits (test only)"

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    seen = set() if split == "train" else _substrings(self._strings("train"))
    fresh = (digits for digits in self._strings(split) if " ".join(digits) not in seen)
    for digits in itertools.islice(fresh, REVERSE_SIZES[split]):
      yield {"inputs": " ".join(digits), "targets": " ".join(reversed(digits))}

  @staticmethod
  def _strings(split: str) -> Iterator[list[str]]:
    rng = random.Random(f"reverse-{split}")
    while True:
      yield [str(rng.randrange(10)) for _ in range(rng.randint(4, 9))]


def _substrings(strings) -> set[str]:
  """Every run of whole digits, forwards and reversed, in the first REVERSE_SIZES["train"] strings:
  a held-out string among them would leak (see leakage.py's rule)."""
  runs = set()
  for digits in itertools.islice(strings, REVERSE_SIZES["train"]):
    for sequence in (digits, digits[::-1]):
      runs.update(" ".join(sequence[i:j]) for i in range(len(sequence)) for j in range(i + 1, len(sequence) + 1))
  return runs


@pytest.fixture(scope="module")
def reverse_data_dir(tmp_path_factory):
  """A data dir of ReverseDigits (its own small vocabulary); the problem stays registered for
  the module's tests."""
  problem = validate_problem(ReverseDigits())
  with pytest.MonkeyPatch.context() as patch:
    patch.setitem(PROBLEMS._items, problem.name, problem)
    data_dir = tmp_path_factory.mktemp("reverse_data")
    datagen.generate([problem], str(data_dir), progress=False)
    yield str(data_dir)


def _train(data_dir, output_dir, problem, hparams, train_steps, eval_every):
  hparams = ",".join(f"{k}={v}" for k, v in dict(item.split("=") for item in hparams.split(",")).items())
  config = resolve_config(problems=problem, hparams_set="multimodel_tiny", hparams=hparams,
                          data_dir=data_dir, output_dir=str(output_dir), train_steps=train_steps,
                          eval_every=eval_every, eval_examples=48, checkpoint_every=train_steps,
                          log_every=10, final_eval_splits=("dev", "test"))
  results = training.Trainer(config).train()
  losses = [record["loss"][problem] for record in run_dir.read_jsonl(str(output_dir / "train_log.jsonl"))]
  dev = {record["step"]: record for record in run_dir.read_jsonl(str(output_dir / run_dir.METRICS_FILE))
         if record["split"] == "dev" and record["problem"] == problem}
  return results["test"][problem], losses, dev


def _dev_curve(records: dict, metric: str) -> list[float]:
  return [value[metric] for _, value in sorted(records.items())]


def test_reverse_task_loss_falls_and_dev_accuracy_rises(reverse_data_dir, tmp_path):
  hparams = ("hidden_size=32,filter_size=64,num_heads=2,num_encoder_blocks=1,num_mixer_blocks=1,"
             "num_decoder_blocks=1,num_experts=2,large_kernel_size=3,batch_size=32,"
             "max_input_length=16,max_target_length=16,learning_rate=5e-3,learning_rate_warmup_steps=50,"
             "dropout=0.0,label_smoothing=0.0,vocab_size=512")
  test, losses, dev = _train(reverse_data_dir, tmp_path, ReverseDigits.name, hparams, 200, 100)
  assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), losses
  accuracy = _dev_curve(dev, "accuracy")
  assert len(accuracy) == 2 and accuracy[1] > accuracy[0], dev
  assert test["accuracy"] > 0.6, test   # a digit at random: 0.1
  assert test["wer"] < 0.7, test         # the empty decode: 1.0


def test_image_digits_loss_falls_and_dev_accuracy_rises(train_data_dir, tiny_hparams, tmp_path):
  hparams = f"{tiny_hparams},hidden_size=32,batch_size=16,learning_rate=5e-3,learning_rate_warmup_steps=50"
  test, losses, dev = _train(train_data_dir, tmp_path, "image_digits", hparams, 300, 100)
  assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), losses
  accuracy = _dev_curve(dev, "accuracy")
  assert len(accuracy) == 3 and accuracy[-1] > accuracy[0], dev
  assert test["accuracy"] > 0.5, test    # chance: 0.1
