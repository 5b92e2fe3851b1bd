"""Per-problem evaluation of a MultiModel on a split: each problem's declared metrics and its loss.

Token metrics (accuracy, accuracy_top5, neg_log_perplexity) come from one teacher-forced pass;
text metrics (bleu, wer, bracket_f1, exact_match) from greedy decodes through the model's
incremental cache (`decoding.decode_ids`: encode once, then one decode_step per token),
detokenised with the run's vocabulary and scored against the detokenised references. Every
problem also reports `loss`, the training loss (label-smoothed cross-entropy) on the split.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

from t2t_multimodel import decoding, inputs, metrics
from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.problem import Problem
from t2t_multimodel.vocab import SubwordVocab


@dataclasses.dataclass
class ProblemResult:
  """One problem's evaluation: metric name -> value, and a few decoded examples."""

  metrics: dict[str, float]
  samples: list[dict[str, str]]


class Evaluator:
  """Evaluates every problem of a run on a split, `eval_steps` batches each.

  Args:
    model: the MultiModel.
    problems: the run's problems.
    hparams: the run's hparams (the input pipeline).
    data_dir: where the shards are.
    vocab: the shared vocabulary (None if no problem has text).
    eval_steps: batches per problem and split; 0 reads the whole split.
    num_samples: decoded examples kept per problem.

  Example:
    >>> evaluator = Evaluator(model, problems, hp, data_dir, vocab, eval_steps=10)
    >>> results = evaluator.evaluate("dev")
    >>> results["image_digits"].metrics["accuracy"]
  """

  def __init__(self, model, problems: Sequence[Problem], hparams: HParams, data_dir: str,
               vocab: SubwordVocab | None, eval_steps: int = 0, num_samples: int = 3):
    self.model, self.problems, self.hparams = model, list(problems), hparams
    self.data_dir, self.vocab = data_dir, vocab
    self.eval_steps, self.num_samples = eval_steps, num_samples
    self._token_fns: dict[str, tf.types.experimental.PolymorphicFunction] = {}
    self._decode_fns: dict[str, tf.types.experimental.PolymorphicFunction] = {}

  def evaluate(self, split: str) -> dict[str, ProblemResult]:
    """Problem name -> its result on `split`."""
    return {problem.name: self.evaluate_problem(problem, split) for problem in self.problems}

  def evaluate_problem(self, problem: Problem, split: str) -> ProblemResult:
    _, text_names = metrics.split_metric_names(problem.metrics)
    dataset = inputs.problem_dataset(problem, split, self.data_dir, self.hparams,
                                     training=False, seed=0)
    if self.eval_steps > 0:
      dataset = dataset.take(self.eval_steps)
    tokens, loss_sum, loss_count = metrics.TokenMetrics(), 0.0, 0.0
    hypotheses, references, samples = [], [], []
    for batch in dataset:
      statistics, loss, count, predictions = self._token_fn(problem, dataset.element_spec)(batch)
      tokens.add(statistics)
      loss_sum, loss_count = loss_sum + float(loss) * float(count), loss_count + float(count)
      if problem.target_modality == "class_label":
        hyps, refs = self._label_names(problem, predictions.numpy()), self._label_names(
            problem, batch["targets"].numpy()[:, 0])
      elif text_names or len(samples) < self.num_samples:
        decode = self._decode_fn(problem, dataset.element_spec["inputs"])
        hyps = self._texts(decode(batch["inputs"]).numpy())
        refs = self._texts(batch["targets"].numpy())
      else:
        continue
      hypotheses += hyps
      references += refs
      samples += self._samples(problem, batch["inputs"].numpy(), refs, hyps)[
          :max(0, self.num_samples - len(samples))]
    values = {name: value for name, value in tokens.result().items() if name in problem.metrics}
    values.update(metrics.text_metrics(problem.metrics, hypotheses, references))
    values["loss"] = loss_sum / max(loss_count, 1.0)
    return ProblemResult({name: float(value) for name, value in values.items()}, samples)

  # --- Compiled pieces, one per problem, traced once for every batch shape of its split. ---------

  def _token_fn(self, problem: Problem, batch_spec):
    if problem.name not in self._token_fns:
      def token_pass(batch):
        logits = self.model(batch, problem=problem.name, training=False)
        loss, count = self.model.problem_loss(problem.name, batch, logits)
        predictions = tf.argmax(logits, axis=-1, output_type=tf.int32)   # [B] or [B, T]
        return metrics.batch_statistics(logits, batch["targets"]), loss, count, predictions
      self._token_fns[problem.name] = tf.function(token_pass, input_signature=[batch_spec])
    return self._token_fns[problem.name]

  def _decode_fn(self, problem: Problem, inputs_spec):
    if problem.name not in self._decode_fns:
      max_length = self.hparams.max_target_length
      self._decode_fns[problem.name] = tf.function(
          lambda x: decoding.decode_ids(self.model, problem.name, x, max_length),
          input_signature=[inputs_spec])
    return self._decode_fns[problem.name]

  # --- Turning ids into strings. -----------------------------------------------------------------

  def _texts(self, ids: np.ndarray) -> list[str]:
    return [self.vocab.decode(row.tolist()) for row in ids]

  @staticmethod
  def _label_names(problem: Problem, labels: np.ndarray) -> list[str]:
    names = problem.class_names
    return [names[int(label)] if names else str(int(label)) for label in labels]

  def _samples(self, problem: Problem, input_batch: np.ndarray, references: list[str],
               hypotheses: list[str]) -> list[dict[str, str]]:
    return [{"input": self._describe_input(problem, value), "reference": reference,
             "hypothesis": hypothesis}
            for value, reference, hypothesis in zip(input_batch, references, hypotheses)]

  def _describe_input(self, problem: Problem, value: np.ndarray) -> str:
    if problem.input_modality == "symbol":
      return self.vocab.decode(value.tolist())
    if problem.input_modality == "image":
      return f"[image {value.shape[0]}x{value.shape[1]}]"
    frames = int(np.any(value != 0, axis=-1).sum())
    return f"[audio, {frames} frames of {value.shape[-1]} mel bins]"


def flat_records(results: dict[str, ProblemResult], step: int, split: str) -> list[dict]:
  """One metrics.jsonl record per problem: {"step", "problem", "split", metric: value, ...}."""
  return [{"step": step, "problem": name, "split": split, **result.metrics}
          for name, result in results.items()]


def summary_line(name: str, result: ProblemResult) -> str:
  """'image_digits: accuracy=0.912 accuracy_top5=0.990 loss=0.41'."""
  return f"{name}: " + " ".join(f"{key}={value:.4g}" for key, value in result.metrics.items())
