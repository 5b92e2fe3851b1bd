"""Shared fixtures: real data for image_digits and translate_ende_bible, generated once per run.

Under pytest-xdist every worker asks for the same data; the first one generates it under a
file lock in the run's shared temporary directory and the others reuse it.
"""

from __future__ import annotations

import fcntl
import os

import pytest

TRAIN_DATA_PROBLEMS = ("image_digits", "translate_ende_bible")

# hparams small enough that a few training steps of both problems take seconds on 2 CPU cores.
TINY_HPARAMS = ("hidden_size=16,filter_size=16,num_heads=2,num_encoder_blocks=1,num_mixer_blocks=1,"
                "num_decoder_blocks=1,num_experts=2,large_kernel_size=3,batch_size=4,image_size=8,"
                "max_input_length=16,max_target_length=16,length_bucket_step=8,audio_blocks=2,"
                "audio_time_strides=1,learning_rate_warmup_steps=10")


def _shared_dir(tmp_path_factory, worker_id: str):
  root = tmp_path_factory.getbasetemp()
  return root.parent if worker_id != "master" else root


@pytest.fixture(scope="session")
def worker_id(request) -> str:
  """pytest-xdist's worker id ("gw0", ...), "master" without xdist."""
  return getattr(request.config, "workerinput", {}).get("workerid", "master")


@pytest.fixture(scope="session")
def train_data_dir(tmp_path_factory, worker_id) -> str:
  """A data dir with image_digits and translate_ende_bible (vocab + shards), made by mm-datagen's engine."""
  from t2t_multimodel.data import datagen
  from t2t_multimodel.problems import resolve

  shared = _shared_dir(tmp_path_factory, worker_id)
  data_dir = shared / "train_data"
  with open(shared / "train_data.lock", "w") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    if not (data_dir / "done").exists():
      datagen.generate(resolve(",".join(TRAIN_DATA_PROBLEMS)), str(data_dir), str(shared / "train_tmp"),
                       progress=False)
      (data_dir / "done").write_text("ok")
  return str(data_dir)


@pytest.fixture(scope="session")
def tiny_hparams() -> str:
  """--hparams overrides of multimodel_tiny for fast training tests."""
  return TINY_HPARAMS


@pytest.fixture
def copy_data(train_data_dir, tmp_path):
  """Returns a function that copies the shared data dir (to damage it) and returns the copy."""
  import shutil

  def copy() -> str:
    target = tmp_path / "data_copy"
    shutil.copytree(train_data_dir, target)
    return str(target)

  return copy


def pytest_configure(config):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # as the CLIs: no CUDA probing errors
