"""Reading a problem's shards back as a tf.data.Dataset of decoded features."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from t2t_multimodel.errors import UserError
from t2t_multimodel import features
from t2t_multimodel.datagen import manifest_path, shard_path
from t2t_multimodel.problem import Problem


class DataNotFoundError(UserError, FileNotFoundError):
  """A problem with no (complete) shards in the data dir."""


def read_manifest(problem: Problem, data_dir: str) -> dict:
  path = manifest_path(data_dir, problem.name)
  if not os.path.exists(path):
    raise DataNotFoundError(
        f"No data for problem {problem.name} in {data_dir}: run "
        f"mm-datagen --problems={problem.name} --data_dir={data_dir}")
  with open(path) as f:
    return json.load(f)


def data_record(problems, data_dir: str) -> dict[str, dict]:
  """{problem: {"version", "counts", "vocab_sha256"}} of the manifests in `data_dir`: what a run
  records of its data, so that evaluating it on other data is caught."""
  record = {}
  for problem in problems:
    manifest = read_manifest(problem, data_dir)
    record[problem.name] = {key: manifest.get(key) for key in ("version", "counts", "vocab_sha256")}
  return record


def split_files(problem: Problem, split: str, data_dir: str) -> list[str]:
  n = read_manifest(problem, data_dir)["shards"][split]
  return [shard_path(data_dir, problem.name, split, i, n) for i in range(n)]


def load_split(problem: Problem, split: str, data_dir: str) -> tf.data.Dataset:
  """The examples of `split` in generation order, decoded: {"inputs": ..., "targets": ...,
  "<role>_text": ... for symbol roles} (see features.py)."""
  files = split_files(problem, split, data_dir)
  parse = features.parse_fn(problem.input_modality, problem.target_modality, with_text=True)
  # mm-datagen deals example i to shard i % n: a round robin over the shards is generation order.
  records = tf.data.Dataset.from_tensor_slices(files).interleave(
      tf.data.TFRecordDataset, cycle_length=len(files), block_length=1)
  return records.map(parse, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
