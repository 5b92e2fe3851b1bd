"""A training run's output_dir: its resolved configuration, written once, checked on every rerun.

  O/hparams.json      the resolved HParams (HParams.to_json)
  O/problems.json     {"spec", "problems": [Problem.signature()...], "mixing", "rates", "seed",
                       "vocab_sha256", "data_dir", "data": {problem: {"version", "counts",
                       "vocab_sha256"}}}
  O/checkpoints/      tf.train.CheckpointManager checkpoints (see checkpointing.py)
  O/averaged/         mm-avg-checkpoints' averaged model weights (infer/averaging.py)
  O/metrics.jsonl     one line per problem and evaluation: {"step", "problem", "split", metric: value}
  O/train_log.jsonl   training loss per problem, learning rate and steps/s every log interval
  O/decodes.jsonl     a few greedy decodes per problem from the final evaluation
  O/eval_<split>.json the final (or mm-evaluate's) whole-split figures, see evaluate.py
  O/tensorboard/      tf.summary scalars: train/, dev/, test/
  O/vocab.mm8k.model  the vocabulary the run was trained with (copied from the data dir)

Everything that reads a run (the decoder, the report) loads its configuration from here, so a
user never repeats training flags. Rerunning the trainer into an existing run with other hparams,
problems, mixing, seed or vocabulary is an error (RunDirMismatchError) unless --overwrite, which
deletes the run's files (and only those) first.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from t2t_multimodel.data.data_dir import write_json_atomic
from t2t_multimodel.errors import UserError
from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.vocab import VOCAB_FILENAME

HPARAMS_FILE = "hparams.json"
PROBLEMS_FILE = "problems.json"
METRICS_FILE = "metrics.jsonl"
TRAIN_LOG_FILE = "train_log.jsonl"
DECODES_FILE = "decodes.jsonl"
CHECKPOINT_DIR = "checkpoints"
AVERAGED_DIR = "averaged"
TENSORBOARD_DIR = "tensorboard"
RUN_ENTRIES = (HPARAMS_FILE, PROBLEMS_FILE, METRICS_FILE, TRAIN_LOG_FILE, DECODES_FILE,
               CHECKPOINT_DIR, AVERAGED_DIR, TENSORBOARD_DIR, VOCAB_FILENAME, "eval_dev.json",
               "eval_test.json", "eval_train.json", "eval_dev_decodes.jsonl", "eval_test_decodes.jsonl",
               "eval_train_decodes.jsonl")
# Keys of problems.json that must not change when a run is continued.
FIXED_KEYS = ("problems", "mixing", "seed", "vocab_sha256")


class RunDirMismatchError(UserError, ValueError):
  """An output_dir that holds a different run."""


class RunDirError(UserError, FileNotFoundError):
  """An output_dir that holds no training run."""


def problems_record(spec: str, signatures: list[dict], mixing: str, rates: dict[str, float],
                    seed: int, vocab_sha256: str | None, data_dir: str,
                    data: dict | None = None) -> dict[str, Any]:
  """The content of problems.json; `data`: each problem's data format and split sizes."""
  return {"spec": spec, "problems": signatures, "mixing": mixing, "rates": rates, "seed": seed,
          "vocab_sha256": vocab_sha256, "data_dir": os.path.abspath(data_dir), "data": data or {}}


def prepare(output_dir: str, hparams: HParams, record: dict[str, Any], *, overwrite: bool = False,
            write: bool = True) -> bool:
  """Makes `output_dir` hold this run; returns True if it already did (a run to continue).

  Args:
    output_dir: the run's directory (created).
    hparams: the resolved hparams.
    record: `problems_record(...)`.
    overwrite: delete a previous run's files first.
    write: write the files (the chief); other workers only check.

  Raises:
    RunDirMismatchError: the directory holds a run with other hparams or problems.
  """
  if overwrite and write:
    clear(output_dir)
  hparams_path = os.path.join(output_dir, HPARAMS_FILE)
  problems_path = os.path.join(output_dir, PROBLEMS_FILE)
  if os.path.exists(hparams_path) and os.path.exists(problems_path) and not overwrite:
    old_hparams, old_record = read_json(hparams_path), read_json(problems_path)
    # A key added to HParams since the run was written takes its default: not a difference.
    old_hparams = {**json.loads(HParams().to_json()), **old_hparams}
    differences = diff(old_hparams, json.loads(hparams.to_json()))
    differences += diff({k: old_record.get(k) for k in FIXED_KEYS}, {k: record[k] for k in FIXED_KEYS})
    if differences:
      raise RunDirMismatchError(
          f"{output_dir} holds a run with different settings ({'; '.join(differences)}). "
          f"Use another --output_dir, or pass --overwrite to delete that run and start over.")
    return True
  if write:
    os.makedirs(output_dir, exist_ok=True)
    write_json(hparams_path, json.loads(hparams.to_json()))
    write_json(problems_path, record)
  return False


def clear(output_dir: str) -> None:
  """Deletes the files of a run (RUN_ENTRIES) in `output_dir`; leaves anything else alone."""
  for entry in RUN_ENTRIES:
    path = os.path.join(output_dir, entry)
    if os.path.isdir(path):
      shutil.rmtree(path)
    elif os.path.exists(path):
      os.remove(path)


def load_run(output_dir: str) -> tuple[HParams, dict[str, Any]]:
  """(hparams, problems record) of the run in `output_dir`, for the decoder and the report."""
  hparams_path = os.path.join(output_dir, HPARAMS_FILE)
  problems_path = os.path.join(output_dir, PROBLEMS_FILE)
  for path in (hparams_path, problems_path):
    if not os.path.exists(path):
      raise RunDirError(f"No training run in {output_dir}: {os.path.basename(path)} is missing. "
                        f"Pass the --output_dir of an mm-trainer run.")
  return HParams.from_dict(read_json(hparams_path)), read_json(problems_path)


def diff(old: dict, new: dict) -> list[str]:
  """'key: old -> new' for every key whose value differs (long values are shortened)."""
  def short(value) -> str:
    if isinstance(value, list) and value and isinstance(value[0], dict) and "name" in value[0]:
      value = [item["name"] for item in value]
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 80 else text[:77] + "..."

  return [f"{key}: {short(old.get(key))} -> {short(new.get(key))}"
          for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def eval_path(output_dir: str, split: str) -> str:
  """mm-evaluate's figures of a whole split: O/eval_<split>.json."""
  return os.path.join(output_dir, f"eval_{split}.json")


def decodes_path(output_dir: str, split: str) -> str:
  """mm-evaluate's decodes of a whole split, one JSON line each: O/eval_<split>_decodes.jsonl."""
  return os.path.join(output_dir, f"eval_{split}_decodes.jsonl")


def read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def append_jsonl(path: str, records: list[dict]) -> None:
  """Appends one JSON line per record and flushes it to disk."""
  with open(path, "a") as f:
    for record in records:
      f.write(json.dumps(record, sort_keys=False) + "\n")
    f.flush()
    os.fsync(f.fileno())


def read_jsonl(path: str) -> list[dict]:
  """The records of a JSON-lines file; [] if it does not exist. A torn last line is skipped."""
  if not os.path.exists(path):
    return []
  records = []
  with open(path) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except ValueError:
        continue
  return records


def truncate_jsonl(path: str, step: int) -> None:
  """Drops the records of steps after `step` (work a resumed run will redo)."""
  if not os.path.exists(path):
    return
  write_jsonl(path, [record for record in read_jsonl(path) if record.get("step", 0) <= step])


def write_jsonl(path: str, records: list[dict]) -> None:
  """Replaces `path` atomically with one JSON line per record."""
  tmp = f"{path}.tmp-{os.getpid()}"
  with open(tmp, "w") as f:
    f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
  os.replace(tmp, path)


write_json = write_json_atomic  # a run's JSON files are replaced atomically, as a data dir's are


def copy_vocab(data_dir: str, output_dir: str) -> None:
  """Keeps the run's own copy of the vocabulary beside its checkpoints."""
  source, target = os.path.join(data_dir, VOCAB_FILENAME), os.path.join(output_dir, VOCAB_FILENAME)
  if os.path.exists(source) and not os.path.exists(target):
    shutil.copyfile(source, target + ".tmp")
    os.replace(target + ".tmp", target)
