"""The trainer's input pipeline: batches of one problem, bucketed by length, deterministic.

Each example is read from the shards that mm-datagen wrote (`shards.read_files`, which checks
that each shard's records cover the whole file, and `features.parse_fn`), then preprocessed by
its modality's `layout` (modalities/: text cut to the length limits, images fitted, audio frames
cut), and its length axis padded up to the layout's multiple.

Training batches group examples of similar lengths (group_by_window), zero-padded. A sequence axis
is padded up to its layout's multiple (`length_bucket_step` tokens, or frames scaled by the audio
net's strides): shapes come from a few lengths, and tf.function retraces are few. A batch holds
`hparams.batch_size` examples, or, with `hparams.batch_tokens` > 0, about that many positions of
the shared body, as T2T batched by tokens: max(1, batch_tokens // L) examples, L the bucket's
longest padded length over inputs and targets in body positions (`body_positions`), so that every
step carries about the same work whatever the problem.

Evaluation batches hold `hparams.eval_batch_size` examples in generation order (the order of
`Problem.generate_samples`; mm-datagen deals example i to shard i % n, so a round robin over the
shards restores it) and carry each text target's untruncated text as "targets_text", the
reference that text metrics score against. `sample=N` keeps a fixed, seeded sample of N
examples spread over the whole split (periodic dev evaluations), never the head of a shard.
"""

from __future__ import annotations

import math
import os
import random
from typing import Callable, Sequence

import tensorflow as tf

from t2t_multimodel import modalities
from t2t_multimodel.data import features, shards
from t2t_multimodel.data.data_dir import read_manifest, split_files
from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.modalities import Layout
from t2t_multimodel.problem import Problem

CACHE_LIMIT_BYTES = 1 << 30       # decoded splits estimated below this are cached in memory.
SHUFFLE_BUFFER = 10_000           # examples; fewer if they are large (SHUFFLE_LIMIT_BYTES).
SHUFFLE_LIMIT_BYTES = 256 << 20


# --- Per-modality preprocessing: each role's modality gives its layout. ---------------------------


def layouts(problem: Problem, hp: HParams) -> dict[str, Layout]:
  """{"inputs": Layout, "targets": Layout} of `problem` under `hp` (`Modality.layout`)."""
  return {role: modalities.of(problem, role).layout(hp, role) for role in modalities.ROLES}


def body_positions(modality: str, hp: HParams, length: int = 0) -> int:
  """How many positions of the shared body [B, T, D] one example of `modality` takes.

  `length` is the example's (padded) length axis: tokens for symbol, frames for audio; image and
  class_label have a fixed size and ignore it.

  Example:
    >>> body_positions("image", multimodel_tiny())          # 16x16 -> an 8x8 grid
    64
    >>> body_positions("audio", multimodel_tiny(), 96)      # audio_time_strides=3
    12
  """
  return modalities.MODALITIES.get(modality).body_positions(hp, length)


# --- Seeded evaluation samples. -----------------------------------------------------------------


def sample_indices(count: int, size: int, seed: int = 0) -> list[int]:
  """`size` example indices of a split of `count`, drawn with `seed`, sorted; all if size >= count.

  The same (count, size, seed) always gives the same indices, spread over the whole split.
  """
  if size <= 0 or size >= count:
    return list(range(count))
  return sorted(random.Random(f"{seed}/{count}/{size}").sample(range(count), size))


# --- The public pipeline. -------------------------------------------------------------------------


def problem_dataset(problem: Problem, split: str, data_dir: str, hparams: HParams, *,
                    training: bool, seed: int, sample: int = 0) -> tf.data.Dataset:
  """Batches of `problem`'s `split`: {"inputs": [B, ...], "targets": [B, ...]}, zero-padded.

  Training: shards interleaved, examples shuffled with `seed`, repeated forever,
  grouped by length. Eval: one pass in generation order, batches of
  `eval_batch_size` (the last may be short), with "targets_text" [B] (the
  untruncated reference) for a symbol target; `sample` > 0 keeps only the
  examples of `sample_indices(count, sample, seed)`.
  The same seed gives the same batches (deterministic tf.data), so a run can
  resume exactly by skipping the batches it consumed.

  Raises:
    DataNotFoundError: the problem has no manifest in `data_dir`.
    CorruptDataError: a shard is missing. A corrupt shard fails while reading
      (see `shards.as_corrupt_data_error`); `shards.check_shards` finds it up front.
  """
  files = split_files(problem, split, data_dir)
  shards.require_files(files)
  count = read_manifest(problem, data_dir)["counts"][split]
  example_bytes = _decoded_example_bytes(problem, hparams, files, count)
  records = shards.read_files(files, training=training, seed=seed)
  if not training and 0 < sample < count:
    mask = [False] * count
    for index in sample_indices(count, sample, seed):
      mask[index] = True
    keep = tf.constant(mask)                                           # [count]
    records = records.enumerate().filter(lambda i, _: keep[i]).map(lambda _, record: record)
    count = sample
  examples = records.map(_example_fn(problem, hparams, with_text=not training),
                         num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if example_bytes * count <= CACHE_LIMIT_BYTES:
    examples = examples.cache()
  if training:
    buffer = max(1, min(count, SHUFFLE_BUFFER, SHUFFLE_LIMIT_BYTES // max(example_bytes, 1)))
    examples = examples.shuffle(buffer, seed=seed, reshuffle_each_iteration=True).repeat()
    batches = _bucketed_batches(examples, problem, hparams)
  else:
    batches = _ordered_batches(examples, problem, hparams)
  return batches.prefetch(tf.data.AUTOTUNE).with_options(_options())


def _options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True
  # Our only stateful op is the shard check's Assert, which has no state: iterators can be saved.
  options.experimental_external_state_policy = tf.data.experimental.ExternalStatePolicy.IGNORE
  return options


def _decoded_example_bytes(problem: Problem, hp: HParams, files: Sequence[str], count: int) -> int:
  """An upper estimate of one preprocessed example's memory (for cache and shuffle sizes)."""
  stored = sum(os.path.getsize(path) for path in files) / max(count, 1)
  return int(4 * stored + sum(modalities.of(problem, role).decoded_bytes(hp) for role in modalities.ROLES))


def _example_fn(problem: Problem, hp: HParams,
                with_text: bool = False) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
  """Parses and preprocesses one record; with_text keeps a symbol target's raw text."""
  parse = features.parse_fn(problem.input_modality, problem.target_modality, with_text=with_text)
  roles = layouts(problem, hp)
  text = features.text_key("targets")

  def example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    parsed = parse(serialized)
    values = {role: layout.preprocess(parsed[role]) for role, layout in roles.items()}
    if text in parsed:
      values[text] = parsed[text]                                      # [] string
    return values

  return example


def _bucketed_batches(examples: tf.data.Dataset, problem: Problem, hp: HParams) -> tf.data.Dataset:
  """Batches of examples whose lengths fall in the same buckets, padded to the buckets' lengths.

  A bucket's batch holds `_bucket_batch_sizes(problem, hp)[key]` examples.
  """
  roles = layouts(problem, hp)
  targets = roles["targets"]
  radix = _num_buckets(targets)
  sizes = tf.constant(_bucket_batch_sizes(problem, hp), tf.int64)      # [buckets]

  def bucket(layout: Layout, value: tf.Tensor) -> tf.Tensor:
    if layout.multiple is None:
      return tf.constant(0, tf.int64)
    length = tf.cast(tf.shape(value)[0], tf.int64)
    return (length + layout.multiple - 1) // layout.multiple           # ceil(length / multiple)

  def key(example):
    return bucket(roles["inputs"], example["inputs"]) * radix + bucket(targets, example["targets"])

  def shape(layout: Layout, index: tf.Tensor) -> tf.Tensor:
    if layout.multiple is None:
      return tf.constant(layout.shape, tf.int64)
    tail = tf.constant(layout.shape[1:], tf.int64)
    return tf.concat([[index * layout.multiple], tail], axis=0)       # [b * multiple, *tail]

  def batch(bucket_key, window):
    shapes = {"inputs": shape(roles["inputs"], bucket_key // radix),
              "targets": shape(targets, bucket_key % radix)}
    return window.padded_batch(sizes[bucket_key], padded_shapes=shapes)

  return examples.group_by_window(key, batch, window_size_func=lambda bucket_key: sizes[bucket_key])


def _num_buckets(layout: Layout) -> int:
  """Bucket indices of a role: 0 .. ceil(max_length / multiple); one for a fixed shape."""
  return 1 if layout.multiple is None else math.ceil(layout.max_length / layout.multiple) + 1


def _bucket_batch_sizes(problem: Problem, hp: HParams) -> list[int]:
  """Examples a batch, by bucket key (inputs bucket * targets buckets + targets bucket).

  batch_tokens 0: batch_size. Otherwise max(1, batch_tokens // L), L the bucket's longest padded
  length over inputs and targets, in body positions.
  """
  roles = layouts(problem, hp)
  radix = _num_buckets(roles["targets"])
  if not hp.batch_tokens:
    return [hp.batch_size] * (_num_buckets(roles["inputs"]) * radix)

  def positions(role: str, index: int) -> int:
    multiple = roles[role].multiple
    modality = problem.input_modality if role == "inputs" else problem.target_modality
    return body_positions(modality, hp, 0 if multiple is None else index * multiple)

  return [max(1, hp.batch_tokens // max(1, positions("inputs", key // radix),
                                        positions("targets", key % radix)))
          for key in range(_num_buckets(roles["inputs"]) * radix)]


def _ordered_batches(examples: tf.data.Dataset, problem: Problem, hp: HParams) -> tf.data.Dataset:
  """Batches in generation order, each length axis padded up to its layout's multiple."""
  roles = layouts(problem, hp)

  def pad(batch):
    return {key: _pad_axis1_to_multiple(value, roles[key].multiple) if key in roles else value
            for key, value in batch.items()}

  return examples.padded_batch(hp.eval_batch_size, drop_remainder=False).map(
      pad, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _pad_axis1_to_multiple(value: tf.Tensor, multiple: int | None) -> tf.Tensor:
  if multiple is None:  # a fixed shape
    return value
  length = tf.shape(value)[1]
  padded = (length + multiple - 1) // multiple * multiple
  paddings = [[0, 0], [0, padded - length]] + [[0, 0]] * (value.shape.rank - 2)
  return tf.pad(value, paddings)                                       # [B, padded, ...]
