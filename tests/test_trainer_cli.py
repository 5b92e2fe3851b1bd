"""mm-trainer end to end: one-line user errors, the registry, corrupt data, NaN, kill -9 and resume."""

import os
import signal
import subprocess
import sys
import time

import pytest

from t2t_multimodel.hparams import HPARAMS
from t2t_multimodel.problems import MIXTURES, PROBLEMS
from t2t_multimodel.run import checkpointing, run_dir

TRAINER = os.path.join(os.path.dirname(sys.executable), "mm-trainer")
MM8_MINI_DATA = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "mm8_mini")


def _args(data_dir, output_dir, *extra, problems="image_digits", hparams=""):
  return [f"--problems={problems}", "--hparams_set=multimodel_tiny", f"--hparams={hparams}",
          f"--data_dir={data_dir}", f"--output_dir={output_dir}", *extra]


def _run(*args, timeout=600):
  return subprocess.run([TRAINER, *args], capture_output=True, text=True, timeout=timeout)


def _assert_one_line_error(result, message):
  assert result.returncode == 2, result.stderr[-3000:]
  lines = [line for line in result.stderr.strip().splitlines() if line.startswith("mm-trainer: error: ")]
  assert len(lines) == 1 and message in lines[0], result.stderr[-3000:]
  assert "Traceback" not in result.stderr


@pytest.mark.parametrize("extra, message", [
    (["--train_steps=5", "--problems=image_digitz"], "Unknown problem 'image_digitz'. Did you mean"),
    (["--train_steps=5", "--hparams_set=tiny"], "Unknown hparam set 'tiny'"),
    (["--train_steps=5", "--hparams=hidden_sise=8"], "Unknown hparam 'hidden_sise'"),
    (["--train_steps=5", "--hparams=dropout='high'"], "Wrong type for hparam 'dropout'"),
    (["--train_steps=5", "--problems=parse_trees"], "No data for problem parse_trees"),
    (["--problems=image_digits"], "--train_steps is required."),
    (["--train_steps=five"], "flag --train_steps=five"),
    (["--train_steps=5", "--strategy=tpu"], "flag --strategy=tpu"),
])
def test_user_mistakes_are_one_line(train_data_dir, tmp_path, extra, message):
  args = _args(train_data_dir, tmp_path / "run")
  # A later flag overrides an earlier one of the same name.
  _assert_one_line_error(_run(*args, *extra), message)
  assert not (tmp_path / "run").exists()


def test_registry_help_lists_every_name():
  result = _run("--registry_help")
  assert result.returncode == 0, result.stderr
  for name in PROBLEMS.names() + MIXTURES.names() + HPARAMS.names() + ["multimodel"]:
    assert name in result.stdout
  assert "To-Parse-Tree" in result.stdout and "image -> class_label" in result.stdout


def test_a_corrupt_shard_is_named(copy_data, tmp_path):
  data_dir = copy_data()
  shard = os.path.join(data_dir, "translate_ende_bible-train-00002-of-00004")
  with open(shard, "r+b") as f:
    f.truncate(os.path.getsize(shard) - 9)
  result = _run(*_args(data_dir, tmp_path / "run", "--train_steps=5",
                       problems="image_digits,translate_ende_bible"))
  _assert_one_line_error(result, f"Corrupt or truncated TFRecord file {shard}")


def test_nan_loss_is_one_line_naming_problem_and_step(train_data_dir, tiny_hparams, tmp_path):
  result = _run(*_args(train_data_dir, tmp_path, "--train_steps=30", "--checkpoint_every=1",
                       hparams=tiny_hparams + ",learning_rate=1e30,clip_grad_norm=0.0"))
  _assert_one_line_error(result, "on problem image_digits; training stopped")
  assert "Loss became nan at step" in result.stderr or "Loss became inf at step" in result.stderr


def test_kill_9_then_rerun_resumes(train_data_dir, tiny_hparams, tmp_path):
  args = _args(train_data_dir, tmp_path, "--train_steps=80", "--checkpoint_every=5", "--eval_every=40",
               "--eval_examples=8", hparams=tiny_hparams)
  process = subprocess.Popen([TRAINER, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.monotonic() + 300
  while (checkpointing.latest_step(str(tmp_path)) or 0) < 10 and process.poll() is None:
    assert time.monotonic() < deadline, "no checkpoint after 300 s"
    time.sleep(0.2)
  process.send_signal(signal.SIGKILL)
  process.wait()
  assert process.returncode == -signal.SIGKILL
  killed_at = checkpointing.latest_step(str(tmp_path))
  assert 10 <= killed_at < 80
  result = _run(*args)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"Resuming from step {killed_at}" in result.stderr
  assert checkpointing.latest_step(str(tmp_path)) == 80
  records = run_dir.read_jsonl(str(tmp_path / run_dir.METRICS_FILE))
  assert [(r["step"], r["split"]) for r in records] == [(40, "dev"), (80, "dev"), (80, "test")]


@pytest.mark.slow
def test_mm8_mini_writes_metrics_for_all_8_problems(tmp_path):
  if not os.path.exists(os.path.join(MM8_MINI_DATA, "parse_trees.manifest.json")):
    generate = subprocess.run([os.path.join(os.path.dirname(TRAINER), "mm-datagen"), "--problems=mm8_mini",
                               f"--data_dir={MM8_MINI_DATA}"], capture_output=True, text=True)
    assert generate.returncode == 0, generate.stderr[-3000:]
  result = _run(*_args(MM8_MINI_DATA, tmp_path, "--train_steps=30", "--eval_every=30", "--eval_examples=32",
                       problems="mm8_mini"), timeout=3000)
  assert result.returncode == 0, result.stderr[-3000:]
  records = run_dir.read_jsonl(str(tmp_path / run_dir.METRICS_FILE))
  names = MIXTURES.get("mm8_mini").problem_names
  for split in ("dev", "test"):
    by_problem = {r["problem"]: r for r in records if r["split"] == split and r["step"] == 30}
    assert sorted(by_problem) == sorted(names)
    for name in names:
      assert all(metric in by_problem[name] for metric in PROBLEMS.get(name).metrics)
