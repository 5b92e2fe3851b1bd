"""Reading a problem's shards back whole, and checking them.

Every shard is read through a check that its records cover the whole file: a corrupt or truncated
shard ends the tf.data pipeline with an error naming the file, which `as_corrupt_data_error` turns
into a one-line CorruptDataError. `check_shards` reads a split whole before training (CRCs checked,
counts against the manifest); `check_vocab` checks a data dir's vocabulary against a run's.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import tensorflow as tf

from t2t_multimodel.data import features
from t2t_multimodel.data.data_dir import read_manifest, regenerate_hint, split_files
from t2t_multimodel.errors import UserError
from t2t_multimodel.problem import Problem
from t2t_multimodel.vocab import load_vocab, VOCAB_FILENAME

RECORD_OVERHEAD_BYTES = 16        # a TFRecord: length (8) + its CRC (4) + data + data CRC (4).
_CHECK_BATCH = 256                # records summed at once by the shard check.
_CORRUPT = "Corrupt or truncated TFRecord file"


class CorruptDataError(UserError, ValueError):
  """A shard that cannot be read back whole; the message names the file."""


class VocabMismatchError(UserError, ValueError):
  """The data dir's vocabulary is not the one a run was trained with."""


# --- Reading, with a whole-file check. ------------------------------------------------------------


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


def read_files(files: Sequence[str], *, training: bool, seed: int = 0) -> tf.data.Dataset:
  """Serialized records of `files`. Training: shards shuffled and interleaved. Otherwise a round
  robin over the shards: mm-datagen deals example i to shard i % n, so that is generation order."""
  require_files(files)
  sizes = [os.path.getsize(path) for path in files]
  paths = tf.data.Dataset.from_tensor_slices((list(files), tf.constant(sizes, tf.int64)))
  if training:
    paths = paths.shuffle(len(files), seed=seed)
    return paths.interleave(_checked_records, cycle_length=min(len(files), 8),
                            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return paths.interleave(_checked_records, cycle_length=len(files), block_length=1)


def load_split(problem: Problem, split: str, data_dir: str) -> tf.data.Dataset:
  """The examples of `split` in generation order, decoded: {"inputs": ..., "targets": ...,
  "<role>_text": ... for text roles} (see features.py)."""
  parse = features.parse_fn(problem.input_modality, problem.target_modality, with_text=True)
  records = read_files(split_files(problem, split, data_dir), training=False)
  return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def require_files(files: Sequence[str]) -> None:
  for path in files:
    if not os.path.exists(path):
      raise CorruptDataError(f"Missing shard {path}. {regenerate_hint(path)}")


def as_corrupt_data_error(error: BaseException) -> CorruptDataError | None:
  """The one-line CorruptDataError hidden in a tf.data error from our reader, else None."""
  match = re.search(_CORRUPT + r" (.+?): records cover (\d+) of its (\d+) bytes", str(error))
  if not match:
    return None
  path, read, size = match.groups()
  return CorruptDataError(f"{_CORRUPT} {path}: its records cover {read} of its {size} bytes. "
                          f"{regenerate_hint(path)}")


# --- Checks before training and evaluation. -------------------------------------------------------


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
    raise CorruptDataError(f"{_CORRUPT} {path}: {reason}. {regenerate_hint(path)}") from None
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
  require_files(files)
  expected = read_manifest(problem, data_dir)["counts"][split]
  counts = []
  for path in files:
    records, covered = _scan_shard(path)
    size = os.path.getsize(path)
    if covered != size:
      raise CorruptDataError(f"{_CORRUPT} {path}: its records cover {covered} of its {size} bytes. "
                             f"{regenerate_hint(path)}")
    counts.append(records)
  if sum(counts) != expected:
    dealt = _round_robin_counts(expected, len(files))
    short = [path for path, n, m in zip(files, counts, dealt) if n != m] or files
    raise CorruptDataError(f"{_CORRUPT} {short[0]}: {problem.name}/{split} holds {sum(counts)} "
                           f"examples, its manifest {expected}. {regenerate_hint(short[0])}")
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
