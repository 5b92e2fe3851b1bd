"""mm-evaluate's engine: a trained run scored on a whole split, written to O/eval_<split>.json.

  O/eval_<split>.json           {"split", "step", "checkpoint", "decoding": {"beam_size", "alpha",
                                 "max_length"}, "data_dir", "problems": {name: {"examples": N,
                                 "metrics": {metric: value}}}}
  O/eval_<split>_decodes.jsonl  one {"problem", "input", "reference", "hypothesis"} per example

The trainer's final evaluation writes the same files through `write_results`, from the same
`evaluation.Evaluator`. Before reading any data, the run's data dir is checked against what the
run was trained with (problems.json's "data": each problem's data format and split sizes, and the
vocabulary), so a figure is never silently computed on other data.
"""

from __future__ import annotations

import os

import tensorflow as tf

from t2t_multimodel import infer
from t2t_multimodel.data import shards
from t2t_multimodel.data.data_dir import data_record
from t2t_multimodel.errors import UserError
from t2t_multimodel.evaluate import evaluation, metrics
from t2t_multimodel.infer import serving
from t2t_multimodel.problem import SPLITS
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.run import checkpointing, run_dir


class DataMismatchError(UserError, ValueError):
  """A data dir whose shards are not the ones the run was trained and evaluated with."""


def check_split(split: str) -> str:
  if split not in SPLITS:
    raise UserError(f"Unknown split {split!r}. Known splits: {', '.join(SPLITS)}")
  return split


def check_data(record: dict, problems, data_dir: str) -> None:
  """DataMismatchError (one line) unless `data_dir` holds the data the run was trained with."""
  shards.check_vocab(data_dir, record.get("vocab_sha256"))
  trained = record.get("data") or {}
  found = data_record(problems, data_dir)
  for name, then in trained.items():
    now = found.get(name)
    if now is not None and now != then:
      what = ("split sizes " + str(now["counts"]) + " instead of " + str(then["counts"])
              if now["counts"] != then["counts"] else
              f"data format {now['version']} instead of {then['version']}")
      raise DataMismatchError(
          f"The data of {name} in {data_dir} is not what the run was trained with: {what}. "
          f"Evaluate on the run's data (rebuild it with the mm-datagen of the run's version), or "
          f"retrain on this data.")


def evaluate_run(output_dir: str, split: str = "test", *, beam_size: int = infer.BEAM_SIZE,
                 alpha: float = infer.ALPHA, max_length: int | None = None, data_dir: str | None = None,
                 checkpoint_path: str | None = None) -> dict:
  """Scores the run in `output_dir` on the whole `split` of every problem; writes and returns
  the content of O/eval_<split>.json."""
  check_split(split)
  hparams, record = run_dir.load_run(output_dir)
  data_dir = data_dir or record["data_dir"]
  problems = [PROBLEMS.get(p["name"]) for p in record["problems"]]
  check_data(record, problems, data_dir)
  model, hparams, record = serving.load_model(output_dir, checkpoint_path)
  path = checkpoint_path or tf.train.latest_checkpoint(checkpointing.checkpoint_dir(output_dir))
  evaluator = evaluation.Evaluator(model, problems, hparams, data_dir, serving.run_vocab(output_dir, record),
                                   beam_size=beam_size, alpha=alpha, max_length=max_length)
  results = evaluator.evaluate(split)
  return write_results(output_dir, split, results, step=checkpointing.step_of(path), checkpoint=path,
                       decoding={"beam_size": beam_size, "alpha": alpha,
                                 "max_length": evaluator.max_length}, data_dir=data_dir)


def write_results(output_dir: str, split: str, results: dict[str, evaluation.ProblemResult], *,
                  step: int, checkpoint: str | None, decoding: dict, data_dir: str) -> dict:
  """Writes O/eval_<split>.json and O/eval_<split>_decodes.jsonl; returns the JSON's content."""
  content = {
      "split": split, "step": step, "checkpoint": checkpoint, "decoding": decoding,
      "data_dir": os.path.abspath(data_dir),
      "problems": {name: {"examples": result.examples, "metrics": result.metrics}
                   for name, result in results.items()},
  }
  run_dir.write_json(run_dir.eval_path(output_dir, split), content)
  decodes = [{"problem": name, **decode} for name, result in results.items()
             for decode in result.decodes]
  run_dir.write_jsonl(run_dir.decodes_path(output_dir, split), decodes)
  return content


def rescore_run(output_dir: str, split: str = "test") -> dict:
  """Recomputes every text metric of O/eval_<split>.json from its stored decodes
  (O/eval_<split>_decodes.jsonl), with the metrics of this version; the token metrics and the
  loss, which need the model, are kept. Rewrites and returns eval_<split>.json's content, with
  "rescored_from" naming the decodes. For a metric whose definition changed since the run."""
  check_split(split)
  content = read_results(output_dir, split)
  path = run_dir.decodes_path(output_dir, split)
  if not os.path.exists(path):
    raise run_dir.RunDirError(f"No {path}: rescoring needs the decodes mm-evaluate writes.")
  decodes: dict[str, list[dict]] = {}
  for record in run_dir.read_jsonl(path):
    decodes.setdefault(record["problem"], []).append(record)
  for name, entry in content["problems"].items():
    rows = decodes.get(name, [])
    if len(rows) != entry["examples"]:
      raise run_dir.RunDirError(f"{path} holds {len(rows)} decodes of {name}, not the "
                                f"{entry['examples']} that {run_dir.eval_path(output_dir, split)} scored.")
    _, text_names = evaluation.metric_names(PROBLEMS.get(name))
    hypotheses, references = [r["hypothesis"] for r in rows], [r["reference"] for r in rows]
    entry["metrics"].update({metric: float(metrics.METRICS.get(metric).text_fn(hypotheses, references))
                             for metric in text_names})
  content["rescored_from"] = os.path.basename(path)
  run_dir.write_json(run_dir.eval_path(output_dir, split), content)
  return content


def format_table(content: dict) -> str:
  """eval_<split>.json's content as a table with a title line."""
  decoding = content["decoding"]
  search = ("greedy" if decoding["beam_size"] == 1 else
            f"beam {decoding['beam_size']}, alpha {decoding['alpha']}")
  title = f"{content['split']} split, whole, step {content['step']}, {search} decoding:"
  return title + "\n" + evaluation.table(content["problems"])


def read_results(output_dir: str, split: str) -> dict:
  """The content of O/eval_<split>.json; RunDirError if the run has none."""
  path = run_dir.eval_path(output_dir, split)
  if not os.path.exists(path):
    raise run_dir.RunDirError(f"No {path}: run mm-evaluate --output_dir={output_dir} --split={split}")
  return run_dir.read_json(path)
