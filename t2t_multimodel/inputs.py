"""The trainer's input pipeline: batches of one problem, bucketed by length, deterministic.

Each example is read from the shards that mm-datagen wrote (the reading pieces of
`dataset.load_split`: `split_files` and `features.parse_fn`), then preprocessed
by a small per-modality function chosen by the modality name:

  symbol       int32 [T], cut to max_{input,target}_length keeping the final EOS
  image        float32 [S, S, 3] in [0, 1], S = image_size; the aspect ratio is
               kept: resized (antialiased bilinear) to fit, then centred on zeros
  audio        float32 [F, 80], F cut to max_input_length * 2**audio_time_strides
  class_label  int32 [1]

Batches hold `hparams.batch_size` examples, zero-padded. A sequence axis is padded
up to a multiple of `length_bucket_step` (of `length_bucket_step *
2**audio_time_strides` frames for audio, so the strided audio net sees a multiple
of the step too): shapes come from a few lengths, and tf.function retraces are few.
Training batches group examples of similar lengths (group_by_window); eval
batches keep the file order.

Each shard is read through a check that the records read cover the whole file:
a corrupt or truncated shard ends the pipeline with an error naming the file
(`as_corrupt_data_error` turns it into a one-line `CorruptDataError`).
"""

from __future__ import annotations

import math
import os
import re
from typing import Callable, NamedTuple, Sequence

import tensorflow as tf

from t2t_multimodel.errors import UserError
from t2t_multimodel import audio, features
from t2t_multimodel.dataset import read_manifest, split_files
from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.problem import Problem
from t2t_multimodel.vocab import VOCAB_FILENAME, load_vocab

CACHE_LIMIT_BYTES = 1 << 30       # decoded splits estimated below this are cached in memory.
SHUFFLE_BUFFER = 10_000           # examples; fewer if they are large (SHUFFLE_LIMIT_BYTES).
SHUFFLE_LIMIT_BYTES = 256 << 20
RECORD_OVERHEAD_BYTES = 16        # a TFRecord: length (8) + its CRC (4) + data + data CRC (4).
_CHECK_BATCH = 256                # records summed at once by the shard check.
_CORRUPT = "Corrupt or truncated TFRecord file"


class CorruptDataError(UserError, ValueError):
  """A shard that cannot be read back whole; the message names the file."""


class VocabMismatchError(UserError, ValueError):
  """The data dir's vocabulary is not the one a run was trained with."""


# --- Per-modality preprocessing, chosen by the modality's name. ----------------------------------


class Layout(NamedTuple):
  """One role's preprocessing, with its sizes resolved from the hparams.

  preprocess: a decoded value -> the model's value (traced by tf.data).
  multiple: the length axis (axis 0) is padded to a multiple of this; None: a fixed shape.
  shape: the per-example shape, None for the length axis.
  max_length: the longest length axis after preprocessing (None: a fixed shape).
  """

  preprocess: Callable[[tf.Tensor], tf.Tensor]
  multiple: int | None
  shape: list[int | None]
  max_length: int | None


def _symbol_layout(hp: HParams, role: str) -> Layout:
  max_length = hp.max_input_length if role == "inputs" else hp.max_target_length

  def truncate_keep_eos(ids: tf.Tensor) -> tf.Tensor:
    ids = tf.cast(ids, tf.int32)                                       # [T]
    length = tf.shape(ids)[0]
    keep = tf.minimum(length, max_length) - 1
    return tf.concat([ids[:keep], ids[length - 1:]], axis=0)           # [min(T, max)], ends in EOS

  return Layout(truncate_keep_eos, hp.length_bucket_step, [None], max_length)


def _image_layout(hp: HParams, role: str) -> Layout:
  size = hp.image_size

  def fit(image: tf.Tensor) -> tf.Tensor:
    shape = tf.cast(tf.shape(image)[:2], tf.float32)                   # [2]: H, W
    fitted = tf.maximum(tf.cast(tf.round(shape * size / tf.reduce_max(shape)), tf.int32), 1)
    image = tf.image.resize(image, fitted, antialias=True)             # [h, w, 3], max(h, w) = S
    offsets = (size - fitted) // 2
    image = tf.image.pad_to_bounding_box(image, offsets[0], offsets[1], size, size)  # [S, S, 3]
    return tf.ensure_shape(tf.clip_by_value(image, 0.0, 1.0), [size, size, 3])

  return Layout(fit, None, [size, size, 3], None)


def _audio_layout(hp: HParams, role: str) -> Layout:
  max_frames = hp.max_input_length * 2 ** hp.audio_time_strides

  def cut(frames: tf.Tensor) -> tf.Tensor:
    return tf.ensure_shape(frames[:max_frames], [None, audio.NUM_MEL_BINS])  # [F, 80]

  # Frames padded to step * 2**strides: the strided audio net then sees a multiple of the step.
  multiple = hp.length_bucket_step * 2 ** hp.audio_time_strides
  return Layout(cut, multiple, [None, audio.NUM_MEL_BINS], max_frames)


def _class_label_layout(hp: HParams, role: str) -> Layout:
  def label(value: tf.Tensor) -> tf.Tensor:
    return tf.ensure_shape(tf.cast(value, tf.int32), [1])             # [1]

  return Layout(label, None, [1], None)


MODALITY_LAYOUTS: dict[str, Callable[[HParams, str], Layout]] = {
    "symbol": _symbol_layout,
    "image": _image_layout,
    "audio": _audio_layout,
    "class_label": _class_label_layout,
}


def layouts(problem: Problem, hp: HParams) -> dict[str, Layout]:
  """{"inputs": Layout, "targets": Layout} of `problem` under `hp`."""
  return {"inputs": MODALITY_LAYOUTS[problem.input_modality](hp, "inputs"),
          "targets": MODALITY_LAYOUTS[problem.target_modality](hp, "targets")}


# --- Reading shards with a whole-file check. ------------------------------------------------------


def _checked_records(path: tf.Tensor, size: tf.Tensor) -> tf.data.Dataset:
  """The records of one file; fails naming the file if they do not cover all `size` bytes."""
  chunks = tf.data.TFRecordDataset(path).ignore_errors().batch(_CHECK_BATCH)
  end = tf.data.Dataset.from_tensors((tf.zeros([0], tf.string), True))
  flagged = chunks.map(lambda chunk: (chunk, False)).concatenate(end)

  def count(consumed, item):
    chunk, last = item
    lengths = tf.cast(tf.strings.length(chunk), tf.int64) + RECORD_OVERHEAD_BYTES  # [N]
    consumed += tf.reduce_sum(lengths)
    return consumed, (chunk, last, consumed)

  def check(chunk, last, consumed):
    ok = tf.logical_or(tf.logical_not(last), tf.equal(consumed, size))
    message = tf.strings.join([_CORRUPT, " ", path, ": records cover ", tf.strings.as_string(consumed),
                               " of its ", tf.strings.as_string(size), " bytes"])
    tf.debugging.Assert(ok, [message])
    return chunk

  return flagged.scan(tf.constant(0, tf.int64), count).map(check).unbatch()


def _read_files(files: Sequence[str], *, training: bool, seed: int) -> tf.data.Dataset:
  sizes = [os.path.getsize(path) for path in files]
  paths = tf.data.Dataset.from_tensor_slices((list(files), tf.constant(sizes, tf.int64)))
  if training:
    paths = paths.shuffle(len(files), seed=seed)
  return paths.interleave(_checked_records, cycle_length=min(len(files), 8) if training else 1,
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def as_corrupt_data_error(error: BaseException) -> CorruptDataError | None:
  """The one-line CorruptDataError hidden in a tf.data error from our reader, else None."""
  match = re.search(_CORRUPT + r" (.+?): records cover (\d+) of its (\d+) bytes", str(error))
  if not match:
    return None
  path, read, size = match.groups()
  return CorruptDataError(f"{_CORRUPT} {path}: its records cover {read} of its {size} bytes. "
                          f"{_regenerate_hint(path)}")


def _regenerate_hint(path: str) -> str:
  name = re.sub(r"-(train|dev|test)-\d{5}-of-\d{5}$", "", os.path.basename(path))
  data_dir = os.path.dirname(path) or "."
  return (f"Delete {os.path.join(data_dir, name + '.manifest.json')} and rerun "
          f"mm-datagen --problems={name} --data_dir={data_dir}")


# --- The public pipeline. -------------------------------------------------------------------------


def problem_dataset(problem: Problem, split: str, data_dir: str, hparams: HParams, *,
                    training: bool, seed: int) -> tf.data.Dataset:
  """Batches of `problem`'s `split`: {"inputs": [B, ...], "targets": [B, ...]}, zero-padded.

  Training: shards interleaved, examples shuffled with `seed`, repeated forever,
  grouped by length. Eval: one pass in file order, the last batch may be short.
  The same seed gives the same batches (deterministic tf.data), so a run can
  resume exactly by skipping the batches it consumed.

  Raises:
    DataNotFoundError: the problem has no manifest in `data_dir`.
    CorruptDataError: a shard is missing. A corrupt shard fails while reading
      (see `as_corrupt_data_error`); `check_shards` finds it up front.
  """
  files = split_files(problem, split, data_dir)
  _require_files(problem, files)
  count = read_manifest(problem, data_dir)["counts"][split]
  example_bytes = _decoded_example_bytes(problem, hparams, files, count)
  examples = _read_files(files, training=training, seed=seed).map(
      _example_fn(problem, hparams), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
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


def _require_files(problem: Problem, files: Sequence[str]) -> None:
  for path in files:
    if not os.path.exists(path):
      raise CorruptDataError(f"Missing shard {path} of problem {problem.name}. "
                             f"{_regenerate_hint(path)}")


def _decoded_example_bytes(problem: Problem, hp: HParams, files: Sequence[str], count: int) -> int:
  """An upper estimate of one preprocessed example's memory (for cache and shuffle sizes)."""
  stored = sum(os.path.getsize(path) for path in files) / max(count, 1)
  has_image = "image" in (problem.input_modality, problem.target_modality)
  return int(4 * stored + (4 * 3 * hp.image_size ** 2 if has_image else 0))


def _example_fn(problem: Problem, hp: HParams) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
  parse = features.parse_fn(problem.input_modality, problem.target_modality)
  roles = layouts(problem, hp)

  def example(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
    parsed = parse(serialized)
    return {role: layout.preprocess(parsed[role]) for role, layout in roles.items()}

  return example


def _bucketed_batches(examples: tf.data.Dataset, problem: Problem, hp: HParams) -> tf.data.Dataset:
  """Batches of examples whose lengths fall in the same buckets, padded to the buckets' lengths."""
  roles = layouts(problem, hp)
  targets = roles["targets"]
  radix = 1 if targets.multiple is None else math.ceil(targets.max_length / targets.multiple) + 1

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
    return window.padded_batch(hp.batch_size, padded_shapes=shapes)

  return examples.group_by_window(key, batch, window_size=hp.batch_size)


def _ordered_batches(examples: tf.data.Dataset, problem: Problem, hp: HParams) -> tf.data.Dataset:
  """Batches in file order, each length axis padded up to its layout's multiple."""
  roles = layouts(problem, hp)

  def pad(batch):
    return {role: _pad_axis1_to_multiple(value, roles[role].multiple) for role, value in batch.items()}

  return examples.padded_batch(hp.batch_size, drop_remainder=False).map(
      pad, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _pad_axis1_to_multiple(value: tf.Tensor, multiple: int | None) -> tf.Tensor:
  if multiple is None:  # a fixed shape
    return value
  length = tf.shape(value)[1]
  padded = (length + multiple - 1) // multiple * multiple
  paddings = [[0, 0], [0, padded - length]] + [[0, 0]] * (value.shape.rank - 2)
  return tf.pad(value, paddings)                                       # [B, padded, ...]


# --- Sizes, shard and vocabulary checks. ----------------------------------------------------------


def dataset_sizes(problems: Sequence[Problem], data_dir: str, split: str = "train") -> dict[str, int]:
  """Example counts of `split` per problem name, from the manifests mm-datagen wrote."""
  return {p.name: int(read_manifest(p, data_dir)["counts"][split]) for p in problems}


def _scan_shard(path: str) -> tuple[int, int]:
  """(records, bytes they cover) of one shard; CorruptDataError if a record fails its CRC."""
  def add(state, chunk):
    lengths = tf.cast(tf.strings.length(chunk), tf.int64) + RECORD_OVERHEAD_BYTES  # [N]
    return state[0] + tf.size(chunk, tf.int64), state[1] + tf.reduce_sum(lengths)

  chunks = tf.data.TFRecordDataset(path, buffer_size=1 << 20).batch(4096)
  try:
    records, covered = chunks.reduce((tf.constant(0, tf.int64), tf.constant(0, tf.int64)), add)
  except tf.errors.DataLossError as e:
    found = re.search(r"(corrupted|truncated) record at \d+", e.message)
    reason = found.group(0) if found else "unreadable record"
    raise CorruptDataError(f"{_CORRUPT} {path}: {reason}. {_regenerate_hint(path)}") from None
  return int(records), int(covered)


def _round_robin_counts(total: int, num_shards: int) -> list[int]:
  """Records per shard as datagen deals them (example i goes to shard i % num_shards)."""
  return [total // num_shards + (i < total % num_shards) for i in range(num_shards)]


def check_shards(problem: Problem, split: str, data_dir: str) -> int:
  """Reads every shard of `split` whole (CRCs checked); returns the example count.

  Raises:
    CorruptDataError: one line naming the first missing, corrupt or truncated shard.
  """
  files = split_files(problem, split, data_dir)
  _require_files(problem, files)
  expected = read_manifest(problem, data_dir)["counts"][split]
  counts = []
  for path in files:
    records, covered = _scan_shard(path)
    size = os.path.getsize(path)
    if covered != size:
      raise CorruptDataError(f"{_CORRUPT} {path}: its records cover {covered} of its {size} bytes. "
                             f"{_regenerate_hint(path)}")
    counts.append(records)
  if sum(counts) != expected:
    dealt = _round_robin_counts(expected, len(files))
    short = [path for path, n, m in zip(files, counts, dealt) if n != m] or files
    raise CorruptDataError(f"{_CORRUPT} {short[0]}: {problem.name}/{split} holds {sum(counts)} "
                           f"examples, its manifest {expected}. {_regenerate_hint(short[0])}")
  return sum(counts)


def check_vocab(data_dir: str, expected_sha256: str | None) -> str | None:
  """Raises VocabMismatchError unless `data_dir`'s vocabulary has `expected_sha256`.

  `expected_sha256` None (a run without text problems) checks nothing. Returns the sha256 found.
  """
  if expected_sha256 is None:
    return None
  found = load_vocab(data_dir).sha256
  if found != expected_sha256:
    raise VocabMismatchError(
        f"The vocabulary in {data_dir} (sha256 {found[:12]}) is not the one the run was trained with "
        f"(sha256 {expected_sha256[:12]}): use the run's data dir, or copy the run's "
        f"{VOCAB_FILENAME} into {data_dir} and rerun mm-datagen there.")
  return found
