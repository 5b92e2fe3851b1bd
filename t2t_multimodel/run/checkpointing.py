"""Checkpoints of a training run: model, optimizer, random state and the data position.

A checkpoint `O/checkpoints/ckpt-<step>` holds
  model       every weight (tf.train.Checkpoint tracks the Keras 3 model)
  optimizer   Adam's moments and its `iterations`, which is the run's global step
  rng         the model's non-trainable variables: Keras seed-generator states (dropout, MoE
              noise), which tf.train.Checkpoint does not reach through the model
  data        the per-problem tf.data iterators (shuffle buffers and positions included), when
              they are checkpointable: under the default strategy. Distributed iterators are
              not; a distributed run instead rebuilds each problem's pipeline and skips the
              batches it already drew (the problem sampler says how many), which gives the
              same batches since the pipelines are deterministic.

tf.train.CheckpointManager keeps the last `keep` checkpoints and updates its index file only
after a checkpoint is complete, so a process killed at any moment loses at most the steps since
the last checkpoint. Only the chief writes `O/checkpoints`; under MultiWorkerMirroredStrategy the
other workers save too (every worker must take part in a save) into
`O/checkpoints/worker_<i>`, a copy of the chief's state kept as the one latest checkpoint.
Workers that share output_dir (the usual setup) all resume from the chief's newest checkpoint; a
worker with its own output_dir resumes from its copy. The trainer checks that every worker
resumes from the same step (distribute.same_on_all_workers).
"""

from __future__ import annotations

import logging
import os
import re
from typing import Mapping

import keras
import tensorflow as tf

from t2t_multimodel.run import distribute
from t2t_multimodel.run.run_dir import CHECKPOINT_DIR

CHECKPOINT_NAME = "ckpt"

log = logging.getLogger(__name__)


def checkpoint_dir(output_dir: str) -> str:
  return os.path.join(output_dir, CHECKPOINT_DIR)


def latest_step(output_dir: str) -> int | None:
  """The step of the newest complete checkpoint in `output_dir`, None if there is none."""
  path = tf.train.latest_checkpoint(checkpoint_dir(output_dir))
  return step_of(path) if path else None


def step_of(path: str) -> int:
  """'.../ckpt-120' -> 120."""
  match = re.search(rf"{CHECKPOINT_NAME}-(\d+)$", path)
  if not match:
    raise ValueError(f"Expected a checkpoint path ending in {CHECKPOINT_NAME}-<step>. Received: {path}")
  return int(match.group(1))


class RunCheckpoint:
  """Saves and restores a run's state in `O/checkpoints`.

  Args:
    output_dir: the run's directory.
    model: the MultiModel, built (every weight created).
    optimizer: the Keras optimizer, built on the model's trainable variables.
    strategy: the run's tf.distribute strategy (who writes where).
    keep: how many checkpoints to keep.
    iterators: problem name -> tf.data iterator, saved with the checkpoint (default strategy).

  Example:
    >>> ckpt = RunCheckpoint(output_dir, model, optimizer, strategy=strategy, keep=3)
    >>> step = ckpt.restore()    # 0 for a new run
    >>> ckpt.save(step)
  """

  def __init__(self, output_dir: str, model: keras.Model, optimizer: keras.optimizers.Optimizer, *,
               strategy: tf.distribute.Strategy, keep: int = 3,
               iterators: Mapping[str, tf.data.Iterator] | None = None):
    self.optimizer = optimizer
    rng = {f"v{i}": variable.value for i, variable in enumerate(model.non_trainable_variables)}
    children = {"model": model, "optimizer": optimizer, "rng": tf.train.Checkpoint(**rng)}
    if iterators:
      children["data"] = tf.train.Checkpoint(**iterators)
    self.checkpoint = tf.train.Checkpoint(**children)
    self.directory = checkpoint_dir(output_dir)
    self.is_chief = distribute.is_chief(strategy)
    write_dir = self.directory
    if not self.is_chief:
      write_dir = os.path.join(self.directory, f"worker_{distribute.task(strategy)[1]}")
    self.manager = tf.train.CheckpointManager(self.checkpoint, write_dir,
                                              max_to_keep=keep if self.is_chief else 1,
                                              checkpoint_name=CHECKPOINT_NAME)

  @property
  def step(self) -> int:
    """The global step: how many updates the optimizer applied."""
    return int(self.optimizer.iterations.numpy())

  def latest(self) -> str | None:
    """The newest complete checkpoint to resume from (the chief's; a worker's own otherwise)."""
    return tf.train.latest_checkpoint(self.directory) or self.manager.latest_checkpoint

  def restore(self) -> int:
    """Restores the newest checkpoint if there is one; returns the step it holds (0 if none)."""
    path = self.latest()
    if not path:
      return 0
    self.checkpoint.restore(path).assert_existing_objects_matched()
    step = self.step
    if step != step_of(path):
      raise ValueError(f"Checkpoint {path} holds step {step}, not {step_of(path)}.")
    return step

  def save(self, step: int) -> str | None:
    """Writes `ckpt-<step>` unless it exists; returns its path."""
    if step != self.step:
      raise ValueError(f"Expected the optimizer at step {step}. Received: iterations={self.step}")
    if self.manager.latest_checkpoint and step_of(self.manager.latest_checkpoint) == step:
      return self.manager.latest_checkpoint
    path = self.manager.save(checkpoint_number=step)
    log.info("Saved checkpoint %s", path)
    return path
