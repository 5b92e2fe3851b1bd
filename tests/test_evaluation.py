"""The Evaluator and mm-evaluate on real data: whole splits, whole references, seeded dev samples."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow as tf

from t2t_multimodel.data import data_dir as data_dir_lib, inputs, shards
from t2t_multimodel.evaluate import evaluation
from t2t_multimodel.evaluate.evaluator import read_results
from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.infer import serving
from t2t_multimodel.model.multimodel import MultiModel
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.run import run_dir
from t2t_multimodel.vocab import load_vocab

EVALUATE = os.path.join(os.path.dirname(sys.executable), "mm-evaluate")
PROBLEM_NAMES = ("image_digits", "translate_ende_bible")
# Short targets: many test verses are longer than the model is trained or decodes.
HPARAMS = ("hidden_size=16,filter_size=16,num_heads=2,num_encoder_blocks=1,num_mixer_blocks=1,"
           "num_decoder_blocks=1,num_experts=2,large_kernel_size=3,image_size=8,max_input_length=16,"
           "max_target_length=8,length_bucket_step=8,eval_batch_size=128")


def _make_run(output_dir: str, data_dir: str, checkpoint: bool = True) -> str:
  """A real (untrained) run on the shared data: hparams.json, problems.json, vocab, checkpoint."""
  problems = [PROBLEMS.get(name) for name in PROBLEM_NAMES]
  hp = get_hparams("multimodel_tiny", HPARAMS)
  signatures = [p.signature() for p in problems]
  record = run_dir.problems_record(",".join(PROBLEM_NAMES), signatures, "uniform",
                                   {n: 0.5 for n in PROBLEM_NAMES}, 0, load_vocab(data_dir).sha256,
                                   data_dir, data=data_dir_lib.data_record(problems, data_dir))
  run_dir.prepare(output_dir, hp, record)
  run_dir.copy_vocab(data_dir, output_dir)
  if checkpoint:
    model = MultiModel(hp, signatures)
    model.build_all()
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         os.path.join(output_dir, run_dir.CHECKPOINT_DIR), 1,
                                         checkpoint_name="ckpt")
    manager.save(checkpoint_number=7)
  return output_dir


@pytest.fixture(scope="module")
def run(train_data_dir, tmp_path_factory):
  return _make_run(str(tmp_path_factory.mktemp("run")), train_data_dir)


@pytest.fixture(scope="module")
def evaluator(run, train_data_dir):
  model, hp, record = serving.load_model(run)
  problems = [PROBLEMS.get(name) for name in PROBLEM_NAMES]
  return evaluation.Evaluator(model, problems, hp, train_data_dir, load_vocab(train_data_dir))


def _raw_targets(problem_name: str, split: str, data_dir: str) -> list[str]:
  examples = shards.load_split(PROBLEMS.get(problem_name), split, data_dir)
  return [example["targets_text"].decode("utf-8") for example in examples.as_numpy_iterator()]


def _cli(*args):
  return subprocess.run([EVALUATE, *args], capture_output=True, text=True, timeout=600)


def test_whole_split_is_scored_against_untruncated_references(evaluator, train_data_dir):
  result = evaluator.evaluate_problem(PROBLEMS.get("translate_ende_bible"), "test")
  raw = _raw_targets("translate_ende_bible", "test", train_data_dir)
  assert result.examples == len(raw) == data_dir_lib.dataset_sizes(
      [PROBLEMS.get("translate_ende_bible")], train_data_dir, "test")["translate_ende_bible"]
  # The references are the stored texts, in generation order, whatever max_target_length cut.
  assert [decode["reference"] for decode in result.decodes] == raw
  assert result.decodes[0]["input"] and result.samples == result.decodes[:3]
  vocab = load_vocab(train_data_dir)
  assert sum(len(vocab.encode(text)) > evaluator.hparams.max_target_length for text in raw) > len(raw) // 2
  assert raw[0] == next(PROBLEMS.get("translate_ende_bible").generate_samples("test", ""))["targets"]
  # Every text output also gets chrF and the share of degenerate decodes.
  assert {"bleu", "chrf", "degenerate", "accuracy", "neg_log_perplexity", "loss"} <= set(result.metrics)
  assert 0.0 <= result.metrics["degenerate"] <= 1.0


def test_class_labels_cover_the_whole_split(evaluator, train_data_dir):
  result = evaluator.evaluate_problem(PROBLEMS.get("image_digits"), "test")
  assert result.examples == data_dir_lib.dataset_sizes([PROBLEMS.get("image_digits")], train_data_dir,
                                                 "test")["image_digits"]
  assert len(result.decodes) == result.examples and "chrf" not in result.metrics


def test_a_dev_sample_is_fixed_and_spread_over_the_split(evaluator, train_data_dir):
  # The train split has 4 shards: a sample must come from all of them, not the head of one.
  problem = PROBLEMS.get("translate_ende_bible")
  count = data_dir_lib.dataset_sizes([problem], train_data_dir, "train")[problem.name]
  first = evaluator.evaluate_problem(problem, "train", sample=20)
  again = evaluator.evaluate_problem(problem, "train", sample=20)
  assert first.examples == 20 and first.decodes == again.decodes
  indices = inputs.sample_indices(count, 20, seed=0)
  raw = _raw_targets(problem.name, "train", train_data_dir)
  assert [decode["reference"] for decode in first.decodes] == [raw[i] for i in indices]
  assert len({i % problem.train_shards for i in indices}) == problem.train_shards
  assert min(indices) < count // 4 and max(indices) > 3 * count // 4
  assert inputs.sample_indices(count, 20, seed=1) != indices
  assert inputs.sample_indices(10, 20) == list(range(10))


def test_mm_evaluate_writes_whole_split_figures(run, train_data_dir):
  result = _cli(f"--output_dir={run}", "--split=test")
  assert result.returncode == 0, result.stderr[-3000:]
  content = read_results(run, "test")
  counts = data_dir_lib.dataset_sizes([PROBLEMS.get(n) for n in PROBLEM_NAMES], train_data_dir, "test")
  assert {name: entry["examples"] for name, entry in content["problems"].items()} == counts
  # The default decoding: T2T's beam 4, alpha 0.6.
  assert content["step"] == 7 and content["decoding"] == {"beam_size": 4, "alpha": 0.6, "max_length": 8}
  assert "bleu" in content["problems"]["translate_ende_bible"]["metrics"]
  assert "accuracy" in content["problems"]["image_digits"]["metrics"]
  decodes = run_dir.read_jsonl(run_dir.decodes_path(run, "test"))
  assert len(decodes) == sum(counts.values())
  assert "test split, whole, step 7, beam 4, alpha 0.6 decoding" in result.stdout
  assert "translate_ende_bible" in result.stdout and str(counts["translate_ende_bible"]) in result.stdout


def test_rescore_recomputes_text_metrics_from_the_stored_decodes(tmp_path):
  # The files mm-evaluate writes, with figures made up: rescoring reads the decodes, not a model.
  output_dir = str(tmp_path)
  pairs = [("In the beginning God created the heavens", "Im Anfang schuf Gott die Himmel"),
           ("and the earth was without form", "und die Erde war wüst und leer")]
  decodes = [{"problem": "translate_ende_bible", "input": source, "reference": target,
              "hypothesis": target} for source, target in pairs]
  decodes += [{"problem": "image_digits", "input": "[image 16x16]", "reference": "3", "hypothesis": "3"}]
  run_dir.write_jsonl(run_dir.decodes_path(output_dir, "test"), decodes)
  ende = {"bleu": 1.0, "chrf": 2.0, "degenerate": 0.5, "accuracy": 0.25, "loss": 3.0}
  digits = {"accuracy": 0.75, "loss": 1.0}
  run_dir.write_json(os.path.join(output_dir, "eval_test.json"), {
      "split": "test", "step": 7, "checkpoint": None, "data_dir": output_dir,
      "decoding": {"beam_size": 1, "alpha": 0.6, "max_length": 8},
      "problems": {"translate_ende_bible": {"examples": 2, "metrics": dict(ende)},
                   "image_digits": {"examples": 1, "metrics": dict(digits)}}})
  result = _cli(f"--output_dir={output_dir}", "--split=test", "--rescore")
  assert result.returncode == 0, result.stderr[-3000:]
  after = read_results(output_dir, "test")
  assert after["problems"]["translate_ende_bible"]["metrics"] == pytest.approx(
      {"bleu": 100.0, "chrf": 100.0, "degenerate": 0.0, "accuracy": 0.25, "loss": 3.0})
  assert after["problems"]["image_digits"]["metrics"] == digits  # token metrics need the model
  assert after["rescored_from"] == "eval_test_decodes.jsonl" and after["step"] == 7
  # Decodes that do not cover what was scored are one line, not a wrong figure.
  run_dir.write_jsonl(run_dir.decodes_path(output_dir, "test"), decodes[1:])
  _assert_one_line_error(_cli(f"--output_dir={output_dir}", "--split=test", "--rescore"),
                         "holds 1 decodes of translate_ende_bible, not the 2")


def test_mm_evaluate_beam_search(run):
  result = _cli(f"--output_dir={run}", "--split=dev", "--beam_size=2", "--alpha=1.0")
  assert result.returncode == 0, result.stderr[-3000:]
  content = read_results(run, "dev")
  assert content["decoding"]["beam_size"] == 2 and content["decoding"]["alpha"] == 1.0


def _assert_one_line_error(result, message):
  assert result.returncode == 2, result.stderr[-3000:]
  lines = [line for line in result.stderr.strip().splitlines() if line.startswith("mm-evaluate: error: ")]
  assert len(lines) == 1 and message in lines[0], result.stderr[-3000:]
  assert "Traceback" not in result.stderr


def test_an_unknown_split_is_one_line(run):
  _assert_one_line_error(_cli(f"--output_dir={run}", "--split=valid"), "flag --split=valid")


def test_a_run_without_checkpoints_is_one_line(train_data_dir, tmp_path):
  output_dir = _make_run(str(tmp_path / "run"), train_data_dir, checkpoint=False)
  _assert_one_line_error(_cli(f"--output_dir={output_dir}"), "No checkpoint in")


def test_a_missing_run_is_one_line(tmp_path):
  _assert_one_line_error(_cli(f"--output_dir={tmp_path}"), "No training run in")


def test_data_that_no_longer_matches_the_run_is_one_line(run, copy_data, tmp_path):
  data_dir = copy_data()
  path = os.path.join(data_dir, "translate_ende_bible.manifest.json")
  with open(path) as f:
    manifest = json.load(f)
  manifest["counts"]["test"] -= 1
  with open(path, "w") as f:
    json.dump(manifest, f)
  _assert_one_line_error(_cli(f"--output_dir={run}", f"--data_dir={data_dir}"),
                         "The data of translate_ende_bible in")


def test_table_lists_every_problem_and_count():
  text = evaluation.table({"a": {"examples": 3, "metrics": {"bleu": 1.5}},
                           "bb": {"examples": 10, "metrics": {"wer": 0.25}}})
  header, first, second = text.splitlines()
  assert header.split() == ["problem", "examples", "bleu", "wer"]
  assert first.split() == ["a", "3", "1.5"] and second.split() == ["bb", "10", "0.25"]
