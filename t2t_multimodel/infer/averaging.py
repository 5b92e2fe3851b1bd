"""Checkpoint averaging (T2T's avg_checkpoints.py / t2t-avg-all): the mean of the model weights of
a run's last checkpoints, written as one checkpoint that mm-evaluate, mm-decoder and mm-export load
with --checkpoint_path.

  O/averaged/ckpt-<newest step>         the averaged model (no optimizer, no data position)
  O/averaged/ckpt-<newest step>.json    {"checkpoints": [paths], "steps": [steps]} it averages

Every floating-point weight of the model is averaged (the model's weights are; its seed-generator
states are checkpointed apart, under `rng`, and not read here); a weight of another type would
be the newest checkpoint's. The training checkpoints are only read, and `O/averaged` is apart
from `O/checkpoints`, so a resumed run never starts from an average.
"""

from __future__ import annotations

import glob
import logging
import os

import numpy as np
import tensorflow as tf

from t2t_multimodel.errors import UserError
from t2t_multimodel.infer import serving
from t2t_multimodel.run import checkpointing, run_dir

log = logging.getLogger(__name__)


class NoCheckpointsError(UserError, FileNotFoundError):
  """Nothing to average."""


def checkpoints_in(directory: str) -> list[str]:
  """Every complete `ckpt-<step>` in `directory` (its .index is written last), oldest first."""
  pattern = os.path.join(directory, f"{checkpointing.CHECKPOINT_NAME}-*.index")
  paths = [p[:-len(".index")] for p in glob.glob(pattern)]
  return sorted(paths, key=checkpointing.step_of)


def average_checkpoints(output_dir: str, num_last: int = 5, checkpoint_dir: str | None = None) -> str:
  """Averages the model weights of the newest `num_last` checkpoints of the run in `output_dir`
  (found in `checkpoint_dir`, default O/checkpoints); returns the path of the averaged one.

  Fewer than `num_last` checkpoints are averaged, with a warning, if fewer exist.

  Example:
    >>> path = average_checkpoints("runs/train", num_last=5)   # 'runs/train/averaged/ckpt-12000'
    >>> model, hparams, record = serving.load_model("runs/train", path)
  """
  if num_last < 1:
    raise ValueError(f"Expected `num_last` >= 1. Received: num_last={num_last}")
  directory = checkpoint_dir or checkpointing.checkpoint_dir(output_dir)
  paths = checkpoints_in(directory)[-num_last:]
  if not paths:
    raise NoCheckpointsError(f"No checkpoint in {directory} to average: train first.")
  if len(paths) < num_last:
    log.warning("Averaging the %d checkpoints in %s, not %d.", len(paths), directory, num_last)
  model, _, _ = serving.load_model(output_dir, paths[-1])
  weights = model.weights
  newest = [weight.numpy() for weight in weights]   # non-float weights keep the newest's values
  sums = [np.asarray(value, np.float64) if tf.as_dtype(w.dtype).is_floating else None
          for w, value in zip(weights, newest)]
  restore = tf.train.Checkpoint(model=model)
  for path in paths[:-1]:
    restore.restore(path).expect_partial().assert_existing_objects_matched()
    for i, weight in enumerate(weights):
      if sums[i] is not None:
        sums[i] += np.asarray(weight.numpy(), np.float64)
  for weight, total, value in zip(weights, sums, newest):
    weight.assign(value if total is None else (total / len(paths)).astype(value.dtype))
  # A manager's save, as in training (save_counter included, so load_model's restore matches).
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                       os.path.join(output_dir, run_dir.AVERAGED_DIR), max_to_keep=None,
                                       checkpoint_name=checkpointing.CHECKPOINT_NAME)
  written = manager.save(checkpoint_number=checkpointing.step_of(paths[-1]))
  run_dir.write_json(written + ".json", {"checkpoints": paths,
                                         "steps": [checkpointing.step_of(p) for p in paths]})
  log.info("Averaged %d checkpoints (steps %s) into %s", len(paths),
           ", ".join(str(checkpointing.step_of(p)) for p in paths), written)
  return written
