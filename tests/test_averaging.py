"""mm-avg-checkpoints: the mean of a run's last checkpoints, loadable as any checkpoint."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.infer import serving
from t2t_multimodel.infer import averaging
from t2t_multimodel.run import run_dir
from tests.test_serving import make_run

AVG = os.path.join(os.path.dirname(sys.executable), "mm-avg-checkpoints")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
  """make_run's untrained run with checkpoints 1, 2 and 3: every weight w at step 1 is w + 1 at
  step 2 and w + 5 at step 3."""
  output_dir = make_run(tmp_path_factory)
  model, _, _ = serving.load_model(output_dir)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                       os.path.join(output_dir, run_dir.CHECKPOINT_DIR), 5,
                                       checkpoint_name="ckpt")
  start = [w.numpy() for w in model.weights]
  for step, shift in ((2, 1.0), (3, 5.0)):
    for weight, value in zip(model.weights, start):
      weight.assign(value + shift)
    manager.save(checkpoint_number=step)
  return output_dir


def _weights(output_dir, path):
  model, _, _ = serving.load_model(output_dir, path)
  return model.weights


def test_the_average_is_the_mean_of_every_weight(run):
  path = averaging.average_checkpoints(run, num_last=3)
  assert path == os.path.join(run, run_dir.AVERAGED_DIR, "ckpt-3")
  first = _weights(run, os.path.join(run, run_dir.CHECKPOINT_DIR, "ckpt-1"))
  averaged = _weights(run, path)
  assert len(averaged) == len(first) > 0
  for start, mean in zip(first, averaged):
    np.testing.assert_allclose(mean.numpy(), start.numpy() + 2.0, rtol=1e-6, atol=1e-6)  # (0+1+5)/3
  with open(path + ".json", encoding="utf-8") as f:
    assert json.load(f)["steps"] == [1, 2, 3]


def test_num_last_takes_the_newest_and_fewer_checkpoints_are_averaged_whole(run):
  first = _weights(run, os.path.join(run, run_dir.CHECKPOINT_DIR, "ckpt-1"))
  for num_last, shift in ((2, 3.0), (10, 2.0)):
    averaged = _weights(run, averaging.average_checkpoints(run, num_last=num_last))
    for start, mean in zip(first, averaged):
      np.testing.assert_allclose(mean.numpy(), start.numpy() + shift, rtol=1e-6, atol=1e-6)


def test_training_checkpoints_are_left_as_they_were(run):
  before = sorted(os.listdir(os.path.join(run, run_dir.CHECKPOINT_DIR)))
  averaging.average_checkpoints(run, num_last=2)
  assert sorted(os.listdir(os.path.join(run, run_dir.CHECKPOINT_DIR))) == before
  assert tf.train.latest_checkpoint(os.path.join(run, run_dir.CHECKPOINT_DIR)).endswith("ckpt-3")


def test_cli_prints_the_path_and_an_empty_dir_is_one_line(run, tmp_path):
  result = subprocess.run([AVG, f"--output_dir={run}", "--num_last=2"], capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip().splitlines()[-1] == os.path.join(run, run_dir.AVERAGED_DIR, "ckpt-3")
  result = subprocess.run([AVG, f"--output_dir={run}", f"--checkpoint_dir={tmp_path}"],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines() == [
      f"mm-avg-checkpoints: error: No checkpoint in {tmp_path} to average: train first."]
