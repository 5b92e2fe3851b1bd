"""The layout of a data directory, in one place: shard and manifest names, atomic JSON writes, and
what the manifests say (mm-datagen writes them; everything else reads them through here).

  <data_dir>/<problem>-<split>-<i:05d>-of-<n:05d>   TFRecord shards; example j is in shard j % n
  <data_dir>/<problem>.manifest.json                {"shards": {split: n}, "counts": {split: N},
                                                     "version", "vocab_sha256", ...}
  <data_dir>/vocab.mm8k.model                       the shared subword vocabulary (vocab.py)
"""

from __future__ import annotations

import json
import os
import re
from typing import Sequence

from t2t_multimodel.errors import UserError
from t2t_multimodel.problem import Problem

MANIFEST_SUFFIX = ".manifest.json"
_SHARD_SUFFIX = re.compile(r"-(train|dev|test)-\d{5}-of-\d{5}$")


class DataNotFoundError(UserError, FileNotFoundError):
  """A problem with no (complete) shards in the data dir."""


def shard_path(data_dir: str, problem: str, split: str, index: int, num_shards: int) -> str:
  return os.path.join(data_dir, f"{problem}-{split}-{index:05d}-of-{num_shards:05d}")


def manifest_path(data_dir: str, problem: str) -> str:
  return os.path.join(data_dir, problem + MANIFEST_SUFFIX)


def regenerate_hint(shard: str) -> str:
  """How to rebuild the problem a shard path belongs to: one sentence for an error message."""
  problem = _SHARD_SUFFIX.sub("", os.path.basename(shard))
  data_dir = os.path.dirname(shard) or "."
  return (f"Delete {manifest_path(data_dir, problem)} and rerun "
          f"mm-datagen --problems={problem} --data_dir={data_dir}")


def write_json_atomic(path: str, value) -> None:
  """Replaces `path` atomically with `value` as indented JSON (keys sorted)."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    json.dump(value, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def read_manifest(problem: Problem, data_dir: str) -> dict:
  path = manifest_path(data_dir, problem.name)
  if not os.path.exists(path):
    raise DataNotFoundError(
        f"No data for problem {problem.name} in {data_dir}: run "
        f"mm-datagen --problems={problem.name} --data_dir={data_dir}")
  with open(path) as f:
    return json.load(f)


def split_files(problem: Problem, split: str, data_dir: str) -> list[str]:
  """The shard paths of `split`, in shard order."""
  n = read_manifest(problem, data_dir)["shards"][split]
  return [shard_path(data_dir, problem.name, split, i, n) for i in range(n)]


def dataset_sizes(problems: Sequence[Problem], data_dir: str, split: str = "train") -> dict[str, int]:
  """Example counts of `split` per problem name, from the manifests mm-datagen wrote."""
  return {p.name: int(read_manifest(p, data_dir)["counts"][split]) for p in problems}


def data_record(problems, data_dir: str) -> dict[str, dict]:
  """{problem: {"version", "counts", "vocab_sha256"}} of the manifests in `data_dir`: what a run
  records of its data, so that evaluating it on other data is caught."""
  record = {}
  for problem in problems:
    manifest = read_manifest(problem, data_dir)
    record[problem.name] = {key: manifest.get(key) for key in ("version", "counts", "vocab_sha256")}
  return record
