"""mm-datagen's engine: the shared vocabulary and sharded TFRecords for a list of problems.

Idempotent: a problem whose manifest matches (same shard layout, same vocab) is
skipped. After the shards, every manifest records `leaked_targets`: how many of the problem's
test and dev targets occur, normalised, in the train text of any problem generated with it
(leakage.py's rule), read back from the raw text stored in the shards. Atomic: shards are written under `*.incomplete` names and renamed, and
the manifest, written last, is what marks a problem as done; a killed run
leaves no half-written shard under a final name and redoes that problem.
"""

from __future__ import annotations

import glob
import itertools
import json
import logging
import os
import random
import time
from typing import Iterator, Sequence

import tensorflow as tf
from tqdm import tqdm

from t2t_multimodel.data import features, leakage
from t2t_multimodel.data.data_dir import manifest_path, shard_path, write_json_atomic
from t2t_multimodel.problem import Problem, SPLITS
from t2t_multimodel.vocab import SubwordVocab, vocab_path

DATA_FORMAT_VERSION = 2  # 2: symbol roles also keep their raw text ("<role>_text")


def ensure_vocab(problems: Sequence[Problem], data_dir: str, tmp_dir: str,
                 vocab_size: int = 8192) -> SubwordVocab:
  """Loads `<data_dir>/vocab.mm8k.model`, or builds it from the problems' train text.

  A vocabulary that lacks some of the problems' `vocab_symbols` as single pieces (one built by an
  older mm-datagen) is rebuilt when it was built for these problems or a subset of them (their
  shards are then regenerated, since manifests record the vocabulary's hash); one built for other
  problems too is kept, with a warning, so their shards stay valid.
  """
  path = vocab_path(data_dir)
  text_problems = [p for p in problems if p.has_text]
  names = [p.name for p in text_problems]
  symbols = list(dict.fromkeys(s for p in text_problems for s in p.vocab_symbols))
  if os.path.exists(path):
    vocab = SubwordVocab(path)
    missing = vocab.missing_symbols(symbols)
    if not missing:
      return vocab
    built_for = _read_json(path + ".json").get("problems", [])
    if not set(built_for) <= set(names):
      logging.warning("The vocabulary %s lacks %d symbols as single pieces (%s) but serves other "
                      "problems too (%s): kept as it is", path, len(missing), " ".join(missing[:5]),
                      ", ".join(sorted(set(built_for) - set(names))))
      return vocab
    logging.warning("Rebuilding the vocabulary %s: it lacks %d symbols as single pieces (%s); the "
                    "shards made with it will be regenerated", path, len(missing), " ".join(missing[:5]))
  logging.info("Building the shared %d-piece vocabulary from %s", vocab_size, ", ".join(names))
  start = time.time()
  texts = itertools.chain.from_iterable(p.vocab_texts(tmp_dir) for p in text_problems)
  vocab = SubwordVocab.build(texts, path, vocab_size, symbols)
  write_json_atomic(path + ".json", {"problems": names, "size": vocab.size, "sha256": vocab.sha256,
                                     "symbols": symbols, "seconds": round(time.time() - start, 1)})
  return vocab


def _read_json(path: str) -> dict:
  try:
    with open(path) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _expected_manifest(problem: Problem, vocab: SubwordVocab | None) -> dict:
  return {
      "version": DATA_FORMAT_VERSION,
      "problem": problem.name,
      "shards": {split: problem.num_shards(split) for split in SPLITS},
      "vocab_sha256": vocab.sha256 if (vocab and problem.has_text) else None,
  }


def is_up_to_date(problem: Problem, data_dir: str, vocab: SubwordVocab | None) -> bool:
  path = manifest_path(data_dir, problem.name)
  if not os.path.exists(path):
    return False
  with open(path) as f:
    manifest = json.load(f)
  expected = _expected_manifest(problem, vocab)
  if any(manifest.get(k) != v for k, v in expected.items()):
    return False
  return all(os.path.exists(shard_path(data_dir, problem.name, split, i, n))
             for split, n in expected["shards"].items() for i in range(n))


def _shuffle_shard(path: str, seed: int) -> None:
  records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
  random.Random(seed).shuffle(records)
  with tf.io.TFRecordWriter(path) as writer:
    for record in records:
      writer.write(record)


def write_problem(problem: Problem, data_dir: str, tmp_dir: str, vocab: SubwordVocab | None,
                  progress: bool = True) -> dict[str, int]:
  """Generates every split of `problem` into shards; returns the example count per split."""
  for stale in glob.glob(os.path.join(data_dir, f"{problem.name}-*.incomplete")):
    os.remove(stale)
  if os.path.exists(manifest_path(data_dir, problem.name)):
    os.remove(manifest_path(data_dir, problem.name))
  counts, written = {}, []
  start = time.time()
  for split in SPLITS:
    n = problem.num_shards(split)
    finals = [shard_path(data_dir, problem.name, split, i, n) for i in range(n)]
    tmps = [f + ".incomplete" for f in finals]
    writers = [tf.io.TFRecordWriter(t) for t in tmps]
    count = 0
    samples = problem.generate_samples(split, tmp_dir)
    for sample in tqdm(samples, desc=f"{problem.name}/{split}", unit=" ex", disable=not progress,
                       mininterval=1.0, leave=False):
      serialized = features.encode_example(sample, problem.input_modality, problem.target_modality, vocab)
      writers[count % n].write(serialized)
      count += 1
    for writer in writers:
      writer.close()
    if count == 0:
      raise RuntimeError(f"Problem {problem.name} generated no {split} examples.")
    if split == "train":
      for i, tmp in enumerate(tmps):
        _shuffle_shard(tmp, seed=i)
    counts[split] = count
    written.extend(zip(tmps, finals))
  for stale in glob.glob(os.path.join(data_dir, f"{problem.name}-*-of-*")):
    if not stale.endswith(".incomplete") and stale not in {f for _, f in written}:
      os.remove(stale)
  for tmp, final in written:
    os.replace(tmp, final)
  manifest = _expected_manifest(problem, vocab)
  manifest.update(counts=counts, seconds=round(time.time() - start, 1))
  write_json_atomic(manifest_path(data_dir, problem.name), manifest)
  return counts


def generate(problems: Sequence[Problem], data_dir: str, tmp_dir: str | None = None,
             progress: bool = True) -> dict[str, dict]:
  """Builds the vocab (if any problem has text) and every problem's shards. Returns manifests."""
  tmp_dir = tmp_dir or os.path.join(data_dir, "tmp")
  for problem in problems:
    problem.check_data(tmp_dir)  # fail at once, before any work
  os.makedirs(data_dir, exist_ok=True)
  os.makedirs(tmp_dir, exist_ok=True)
  vocab = ensure_vocab(problems, data_dir, tmp_dir) if any(p.has_text for p in problems) else None
  for problem in problems:
    if is_up_to_date(problem, data_dir, vocab):
      logging.info("%s: up to date, skipped", problem.name)
    else:
      counts = write_problem(problem, data_dir, tmp_dir, vocab, progress)
      logging.info("%s: %s", problem.name, counts)
  return record_leakage(problems, data_dir)


def stored_texts(problem: Problem, split: str, data_dir: str) -> Iterator[dict[str, str | None]]:
  """{"inputs": text | None, "targets": text | None} of every written example of `split`."""
  keys = {role: features.text_key(role) for role, modality in
          (("inputs", problem.input_modality), ("targets", problem.target_modality))
          if modality == "symbol"}
  spec = {key: tf.io.FixedLenFeature([], tf.string) for key in keys.values()}
  n = problem.num_shards(split)
  files = [shard_path(data_dir, problem.name, split, i, n) for i in range(n)]
  for record in tf.data.TFRecordDataset(files).batch(4096).map(
      lambda chunk: tf.io.parse_example(chunk, spec)).as_numpy_iterator():
    columns = {role: [t.decode("utf-8") for t in record[key]] for role, key in keys.items()}
    for i in range(len(next(iter(columns.values())))) if columns else ():
      yield {role: columns[role][i] if role in columns else None for role in ("inputs", "targets")}


def record_leakage(problems: Sequence[Problem], data_dir: str) -> dict[str, dict]:
  """Writes each manifest's `leaked_targets` ({"test": n, "dev": n, "checked_against": names});
  returns the manifests. Skipped when every manifest already holds the count for these problems."""
  names = sorted(p.name for p in problems)
  manifests = {}
  for problem in problems:
    with open(manifest_path(data_dir, problem.name)) as f:
      manifests[problem.name] = json.load(f)
  text_problems = [p for p in problems if p.has_text]
  if all(manifests[p.name].get("leaked_targets", {}).get("checked_against") == names
         for p in text_problems if p.target_modality == "symbol"):
    return manifests
  start = time.time()
  index = leakage.TextIndex(text for p in text_problems for sample in stored_texts(p, "train", data_dir)
                            for text in sample.values() if text is not None)
  for problem in text_problems:
    if problem.target_modality != "symbol":
      continue
    role = "inputs" if leakage.TREE_METRIC in problem.metrics else "targets"
    counts = {split: sum(index.contains(sample[role] or "")
                         for sample in stored_texts(problem, split, data_dir))
              for split in ("test", "dev")}
    manifests[problem.name]["leaked_targets"] = {**counts, "checked_against": names}
    write_json_atomic(manifest_path(data_dir, problem.name), manifests[problem.name])
    if counts["test"] or counts["dev"]:
      logging.warning("%s: %d test and %d dev targets occur in training text", problem.name,
                      counts["test"], counts["dev"])
  logging.info("Leakage checked in %.1f s", time.time() - start)
  return manifests
