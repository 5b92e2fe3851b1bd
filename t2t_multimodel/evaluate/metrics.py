"""Evaluation metrics, looked up by the names that problems declare in `Problem.metrics`.

Two kinds:
  token metrics, streamed from (logits, targets) batches, padding (id 0) masked
  for symbol targets (a class label of 0 is a real label, never masked):
    accuracy            fraction in [0, 1]: token accuracy (symbol targets) or
                        label accuracy (class_label targets)
    accuracy_top5       fraction in [0, 1]: the target is among the 5 largest logits
    neg_log_perplexity  -mean cross-entropy per non-pad token, natural log, no
                        label smoothing (<= 0; 0 is perfect)
  text metrics, corpus-level, from decoded (detokenised) strings:
    bleu                sacrebleu.corpus_bleu(hyps, [refs]).score, 0-100
    chrf                sacrebleu.corpus_chrf(hyps, [refs]).score, 0-100 (character
                        n-gram F-score; partial credit where BLEU's 4-grams give none)
    wer                 word error rate, jiwer's corpus WER, a fraction (may exceed 1)
    bracket_f1          labelled bracket F1 of linearised parse trees, 0-100 (EVALB's scale)
    exact_match         fraction in [0, 1] of trees equal to their reference
    degenerate          fraction in [0, 1] of hypotheses that are degenerate decodes
                        (lower is better), see `is_degenerate`

A degenerate decode is one caught in a loop: a span of words (tokens split on
whitespace) repeated back to back at least 3 times, the copies covering at least
8 words, AND more times in a row than its reference repeats it. "the king of the
king of the king of the king" ("the king of" 3 times, 9 words) is caught. The
span and the back-to-back condition keep the measure blind to what real outputs
repeat: a linearised parse tree repeats 4-grams such as ")NP )PP )NP )PP" all the
time (a 4-gram seen 3 times anywhere flagged half of the *reference* trees of
parse_trees when scored against another sentence's reference, against 1.5% now),
while Bible prose is flagged 0% of the time either way.

Every text metric takes (hypotheses, references), in that order, and returns a
plain Python float. An empty evaluation is an error, not a perfect (or a zero)
score: a text metric given no pairs, and `TokenMetrics.result()` with nothing
counted, raise ValueError ("... no examples ...").
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jiwer
import numpy as np
import sacrebleu
import tensorflow as tf

from t2t_multimodel.data import trees
from t2t_multimodel.registry import Registry
from t2t_multimodel.vocab import PAD_ID

TextMetricFn = Callable[[Sequence[str], Sequence[str]], float]


# --- Token metrics. -------------------------------------------------------------------------------


def batch_statistics(logits, targets) -> dict[str, tf.Tensor]:
  """Sums over one batch, for `TokenMetrics` (safe inside a tf.function; returns scalars).

  Args:
    logits: [B, T, V] for symbol targets, [B, C] for class labels.
    targets: int [B, T] (0 = padding) or [B, 1].

  Returns:
    {"weight": positions counted, "correct": argmax hits, "correct_top5": top-5 hits,
     "log_likelihood": sum of log p(target)}, float32 scalars.
  """
  logits = tf.cast(tf.convert_to_tensor(logits), tf.float32)
  targets = tf.cast(tf.convert_to_tensor(targets), tf.int32)
  if logits.shape.rank == 2:  # class labels: [B, C] and [B, 1]
    targets = tf.reshape(targets, [-1])                               # [B]
    weights = tf.ones_like(targets, tf.float32)                       # [B]
  else:
    weights = tf.cast(tf.not_equal(targets, PAD_ID), tf.float32)      # [B, T]
  num_classes = logits.shape[-1]
  top = tf.math.top_k(logits, k=5 if num_classes is None else min(5, num_classes)).indices  # [..., k]
  correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), targets), tf.float32)
  in_top5 = tf.cast(tf.reduce_any(tf.equal(top, targets[..., None]), -1), tf.float32)  # [B(, T)]
  cross_entropy = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)
  return {
      "weight": tf.reduce_sum(weights),
      "correct": tf.reduce_sum(correct * weights),
      "correct_top5": tf.reduce_sum(in_top5 * weights),
      "log_likelihood": -tf.reduce_sum(cross_entropy * weights),
  }


class TokenMetrics:
  """Streams accuracy, accuracy_top5 and neg_log_perplexity over eval batches.

  Args: none; call `update` per batch (or `add` with `batch_statistics` computed
  on the device), then `result`.

  Example:
    >>> stream = TokenMetrics()
    >>> stream.update(logits, batch["targets"])
    >>> stream.result()["accuracy"]
  """

  NAMES = ("accuracy", "accuracy_top5", "neg_log_perplexity")

  def __init__(self):
    self.reset()

  def reset(self) -> None:
    self._sums = {"weight": 0.0, "correct": 0.0, "correct_top5": 0.0, "log_likelihood": 0.0}

  def update(self, logits, targets) -> None:
    self.add(batch_statistics(logits, targets))

  def add(self, statistics: dict) -> None:
    """Adds a `batch_statistics` result (tensors or numbers)."""
    for key in self._sums:
      self._sums[key] += float(np.asarray(statistics[key]))

  def result(self) -> dict[str, float]:
    """The three metrics; ValueError if nothing was counted (an empty evaluation)."""
    weight = self._sums["weight"]
    if weight <= 0:
      raise ValueError(f"Expected at least one counted token or label before `result()`. "
                       f"Received: no examples (weight={weight})")
    return {
        "accuracy": self._sums["correct"] / weight,
        "accuracy_top5": self._sums["correct_top5"] / weight,
        "neg_log_perplexity": self._sums["log_likelihood"] / weight,
    }


# --- Text metrics. --------------------------------------------------------------------------------


DEGENERATE_COPIES = 3       # back-to-back copies of a span in a degenerate decode
DEGENERATE_WORDS = 8        # the fewest words those copies cover


def _check_pairs(hypotheses: Sequence[str], references: Sequence[str]) -> None:
  """ValueError unless the lists are aligned and non-empty (an empty evaluation has no score)."""
  if len(hypotheses) != len(references):
    raise ValueError(f"Expected as many hypotheses as references. Received: "
                     f"{len(hypotheses)} hypotheses, {len(references)} references")
  if not hypotheses:
    raise ValueError("Expected at least one (hypothesis, reference) pair to score. "
                     "Received: no examples (0 hypotheses, 0 references)")


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
  """Corpus BLEU, 0-100, of detokenised text (sacrebleu, its default 13a tokeniser)."""
  _check_pairs(hypotheses, references)
  return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def chrf(hypotheses: Sequence[str], references: Sequence[str]) -> float:
  """Corpus chrF, 0-100, of detokenised text (sacrebleu's defaults: character 6-grams, beta 2)."""
  _check_pairs(hypotheses, references)
  return float(sacrebleu.corpus_chrf(list(hypotheses), [list(references)]).score)


def wer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
  """Corpus word error rate as a fraction: (S + D + I) / reference words, as jiwer.wer.

  Empty strings are allowed on either side: an empty reference adds its
  hypothesis' words as insertions (jiwer 4's rule, also under jiwer 3, which
  refuses them); no reference words at all divides by 1.
  """
  _check_pairs(hypotheses, references)
  pairs = [(r, h) for r, h in zip(references, hypotheses) if r.strip()]
  insertions = sum(len(h.split()) for r, h in zip(references, hypotheses) if not r.strip())
  errors, words = insertions, 0
  if pairs:
    out = jiwer.process_words([r for r, _ in pairs], [h for _, h in pairs])
    errors += out.substitutions + out.deletions + out.insertions
    words = out.substitutions + out.deletions + out.hits
  return float(errors / max(words, 1))


def bracket_f1(hypotheses: Sequence[str], references: Sequence[str]) -> float:
  """Corpus labelled-bracket F1 of linearised trees, 0-100 (EVALB's summary; see `trees`)."""
  _check_pairs(hypotheses, references)
  return float(trees.corpus_bracket_f1(hypotheses, references))


def exact_match(hypotheses: Sequence[str], references: Sequence[str]) -> float:
  """Fraction in [0, 1] of trees that match their reference completely (EVALB; see `trees`)."""
  _check_pairs(hypotheses, references)
  counts = trees.corpus_bracket_counts(hypotheses, references)
  return float(counts.complete / counts.sentences)


def _copies_in_a_row(words: Sequence[str], span: tuple[str, ...]) -> int:
  """The most back-to-back copies of `span` anywhere in `words` (0 if it never occurs)."""
  length, best = len(span), 0
  for start in range(len(words) - length + 1):
    copies = 0
    while tuple(words[start + copies * length:start + (copies + 1) * length]) == span:
      copies += 1
    best = max(best, copies)
  return best


def _loops(words: Sequence[str]):
  """Yields (span, copies) for every run of >= DEGENERATE_COPIES back-to-back copies of a span
  covering >= DEGENERATE_WORDS words; one run of equal-offset words per span length."""
  for length in range(1, len(words) // DEGENERATE_COPIES + 1):
    start = 0
    while start + length < len(words):
      end = start                                   # words[start:end + length] is periodic
      while end + length < len(words) and words[end] == words[end + length]:
        end += 1
      copies = (end - start) // length + 1
      if copies >= DEGENERATE_COPIES and copies * length >= DEGENERATE_WORDS:
        yield tuple(words[start:start + length]), copies
      start = end + 1


def is_degenerate(hypothesis: str, reference: str) -> bool:
  """Whether `hypothesis` repeats a span back to back 3+ times over 8+ words, more times in a row
  than `reference` does (see the module docstring).

  Example:
    >>> is_degenerate("the king of the king of the king of the king", "the king of the land")
    True
  """
  ours, theirs = hypothesis.split(), reference.split()
  return any(copies > _copies_in_a_row(theirs, span) for span, copies in _loops(ours))


def degenerate(hypotheses: Sequence[str], references: Sequence[str]) -> float:
  """Fraction in [0, 1] of hypotheses that are degenerate decodes (`is_degenerate`); lower is better."""
  _check_pairs(hypotheses, references)
  return float(np.mean([is_degenerate(h, r) for h, r in zip(hypotheses, references)]))


# --- The registry of metric names. ----------------------------------------------------------------


class Metric(NamedTuple):
  """A metric name's kind ("token" or "text"), its text function, and its scale."""

  kind: str
  text_fn: TextMetricFn | None
  scale: str


METRICS: Registry[Metric] = Registry("metric")
METRICS.add("accuracy", Metric("token", None, "fraction"))
METRICS.add("accuracy_top5", Metric("token", None, "fraction"))
METRICS.add("neg_log_perplexity", Metric("token", None, "nats per token, <= 0"))
METRICS.add("bleu", Metric("text", bleu, "0-100"))
METRICS.add("chrf", Metric("text", chrf, "0-100"))
METRICS.add("wer", Metric("text", wer, "fraction, lower is better"))
METRICS.add("bracket_f1", Metric("text", bracket_f1, "0-100"))
METRICS.add("exact_match", Metric("text", exact_match, "fraction"))
METRICS.add("degenerate", Metric("text", degenerate, "fraction, lower is better"))


def split_metric_names(names: Sequence[str]) -> tuple[list[str], list[str]]:
  """(token metric names, text metric names); an unknown name raises UnknownNameError."""
  kinds = {name: METRICS.get(name).kind for name in names}
  return ([n for n in names if kinds[n] == "token"], [n for n in names if kinds[n] == "text"])


def text_metrics(names: Sequence[str], hypotheses: Sequence[str],
                 references: Sequence[str]) -> dict[str, float]:
  """The text metrics among `names`, computed on decoded strings."""
  _, text_names = split_metric_names(names)
  return {name: METRICS.get(name).text_fn(hypotheses, references) for name in text_names}
