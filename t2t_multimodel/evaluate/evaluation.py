"""Per-problem evaluation of a MultiModel on a split: each problem's metrics over every example.

A split is read whole, in generation order (`inputs.problem_dataset(training=False)`), unless a
`sample` size is given: then a fixed, seeded sample spread over the whole split is scored (the
trainer's periodic dev evaluations). Every result says how many examples it covers.

Token metrics (accuracy, accuracy_top5, neg_log_perplexity) and the loss come from one
teacher-forced pass over the (training-length) ids. Text metrics come from decodes through the
model's incremental cache (`decoding.decode_ids`: greedy, or beam search with T2T's length
penalty), detokenised with the run's vocabulary and scored against the untruncated reference text
that mm-datagen stored beside the ids ("targets_text"), whatever length the model was trained on.
Every problem with a text output also gets `chrf` and `degenerate` (the share of decodes that loop,
see metrics.py) beside the metrics it declares; class labels are scored on the arg-max label.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
import tensorflow as tf

from t2t_multimodel import modalities
from t2t_multimodel.data import inputs
from t2t_multimodel.data.features import text_key
from t2t_multimodel.evaluate import metrics
from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.infer import decoding
from t2t_multimodel.problem import Problem
from t2t_multimodel.vocab import SubwordVocab

TEXT_OUTPUT_METRICS = ("chrf", "degenerate")  # scored for every problem with a text output
MODEL_KEYS = ("inputs", "targets")


@dataclasses.dataclass
class ProblemResult:
  """One problem's evaluation.

  Attributes:
    metrics: metric name -> value (see metrics.py for scales), and "loss".
    examples: how many examples the figures are over.
    samples: a few {"input", "reference", "hypothesis"} examples, for reports.
    decodes: every {"input", "reference", "hypothesis"} scored, in split order.
  """

  metrics: dict[str, float]
  examples: int
  samples: list[dict[str, str]]
  decodes: list[dict[str, str]] = dataclasses.field(default_factory=list)


def metric_names(problem: Problem) -> tuple[list[str], list[str]]:
  """(token metric names, text metric names) that `problem` is scored with."""
  token_names, text_names = metrics.split_metric_names(problem.metrics)
  if modalities.of(problem, "targets").text:
    text_names += [name for name in TEXT_OUTPUT_METRICS if name not in text_names]
  return token_names, text_names


class Evaluator:
  """Evaluates every problem of a run on a split: whole, or a fixed seeded sample.

  Args:
    model: the MultiModel.
    problems: the run's problems.
    hparams: the run's hparams (the input pipeline; `eval_batch_size` examples a batch).
    data_dir: where the shards are.
    vocab: the shared vocabulary (None if no problem has text).
    beam_size: 1 for greedy decoding, else beam search with length penalty `alpha`.
    alpha: T2T's length penalty ((5 + length) / 6) ** alpha.
    max_length: the most tokens decoded (default: hparams.max_target_length).
    num_samples: decoded examples kept per problem for reports.
    seed: the seed of `sample`d evaluations.

  Example:
    >>> evaluator = Evaluator(model, problems, hp, data_dir, vocab)
    >>> results = evaluator.evaluate("test")            # every test example
    >>> results["image_digits"].metrics["accuracy"], results["image_digits"].examples
  """

  def __init__(self, model, problems: Sequence[Problem], hparams: HParams, data_dir: str,
               vocab: SubwordVocab | None, *, beam_size: int = 1, alpha: float = 0.6,
               max_length: int | None = None, num_samples: int = 3, seed: int = 0):
    if beam_size < 1:
      raise ValueError(f"Expected `beam_size` >= 1. Received: beam_size={beam_size}")
    self.model, self.problems, self.hparams = model, list(problems), hparams
    self.data_dir, self.vocab = data_dir, vocab
    self.beam_size, self.alpha = beam_size, alpha
    self.max_length = max_length or hparams.max_target_length
    self.num_samples, self.seed = num_samples, seed
    self._token_fns: dict[str, tf.types.experimental.PolymorphicFunction] = {}
    self._decode_fns: dict[str, tf.types.experimental.PolymorphicFunction] = {}

  def evaluate(self, split: str, sample: int = 0) -> dict[str, ProblemResult]:
    """Problem name -> its result on `split` (whole, or a seeded sample of `sample` examples)."""
    return {problem.name: self.evaluate_problem(problem, split, sample) for problem in self.problems}

  def evaluate_problem(self, problem: Problem, split: str, sample: int = 0) -> ProblemResult:
    token_names, text_names = metric_names(problem)
    dataset = inputs.problem_dataset(problem, split, self.data_dir, self.hparams, training=False,
                                     seed=self.seed, sample=sample)
    model_spec = {key: dataset.element_spec[key] for key in MODEL_KEYS}
    tokens, loss_sum, loss_count, examples = metrics.TokenMetrics(), 0.0, 0.0, 0
    decodes: list[dict[str, str]] = []
    for batch in dataset:
      model_batch = {key: batch[key] for key in MODEL_KEYS}
      statistics, loss, count, predictions = self._token_fn(problem, model_spec)(model_batch)
      tokens.add(statistics)
      loss_sum, loss_count = loss_sum + float(loss) * float(count), loss_count + float(count)
      examples += int(batch["inputs"].shape[0])
      if not modalities.of(problem, "targets").autoregressive:
        hyps = self._outputs(problem, predictions.numpy())
        refs = self._outputs(problem, batch["targets"].numpy())
      elif text_names or len(decodes) < self.num_samples:
        decode = self._decode_fn(problem, model_spec["inputs"])
        hyps = self._outputs(problem, decode(batch["inputs"]).numpy())
        refs = [text.decode("utf-8") for text in batch[text_key("targets")].numpy()]
      else:
        continue
      decodes += self._samples(problem, batch["inputs"].numpy(), refs, hyps)
    if examples == 0:
      raise ValueError(f"No {split} examples of {problem.name} in {self.data_dir} to evaluate.")
    values = {name: value for name, value in tokens.result().items() if name in token_names}
    references = [d["reference"] for d in decodes]
    hypotheses = [d["hypothesis"] for d in decodes]
    values.update({name: metrics.METRICS.get(name).text_fn(hypotheses, references)
                   for name in text_names})
    values["loss"] = loss_sum / max(loss_count, 1.0)
    return ProblemResult({name: float(value) for name, value in values.items()}, examples,
                         decodes[:self.num_samples], decodes)

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
      self._decode_fns[problem.name] = tf.function(
          lambda x: decoding.decode_ids(self.model, problem.name, x, self.max_length,
                                        self.beam_size, self.alpha),
          input_signature=[inputs_spec])
    return self._decode_fns[problem.name]

  # --- Turning ids into strings. -----------------------------------------------------------------

  def _outputs(self, problem: Problem, rows: np.ndarray) -> list[str]:
    """A batch of outputs or stored targets -> one text each (`Modality.to_text`)."""
    modality = modalities.of(problem, "targets")
    return [modality.to_text(row, self.vocab, problem.class_names) for row in rows]

  def _samples(self, problem: Problem, input_batch: np.ndarray, references: list[str],
               hypotheses: list[str]) -> list[dict[str, str]]:
    return [{"input": self._describe_input(problem, value), "reference": reference,
             "hypothesis": hypothesis}
            for value, reference, hypothesis in zip(input_batch, references, hypotheses)]

  def _describe_input(self, problem: Problem, value: np.ndarray) -> str:
    return modalities.of(problem, "inputs").describe(value, self.vocab)


# --- Records and tables. ----------------------------------------------------------------------------


def flat_records(results: dict[str, ProblemResult], step: int, split: str) -> list[dict]:
  """One metrics.jsonl record per problem: {"step", "problem", "split", "examples", metric: value}."""
  return [{"step": step, "problem": name, "split": split, "examples": result.examples,
           **result.metrics} for name, result in results.items()]


def summary_line(name: str, result: ProblemResult) -> str:
  """'image_digits (179 examples): accuracy=0.912 accuracy_top5=0.990 loss=0.41'."""
  values = " ".join(f"{key}={value:.4g}" for key, value in result.metrics.items())
  return f"{name} ({result.examples} examples): {values}"


def table(problems: dict[str, dict]) -> str:
  """A plain-text table of {problem: {"examples": N, "metrics": {...}}} (eval_<split>.json's
  "problems"): one row per problem, its example count and every metric."""
  names = sorted({metric for entry in problems.values() for metric in entry["metrics"]})
  header = ["problem", "examples"] + names
  rows = [[name, str(entry["examples"])] +
          [f"{entry['metrics'][m]:.4g}" if m in entry["metrics"] else "" for m in names]
          for name, entry in problems.items()]
  widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
  return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                   for row in [header] + rows)
