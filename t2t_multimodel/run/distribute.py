"""The tf.distribute strategy of a training run, chosen by the trainer's --strategy flag.

  default       one device (tf.distribute's default strategy: no replication)
  mirrored      MirroredStrategy over the local GPUs, or over the logical CPU devices when
                there is no GPU (tests make two with `tf.config.set_logical_device_configuration`)
  multi_worker  MultiWorkerMirroredStrategy over the cluster in the TF_CONFIG environment
                variable; every worker runs the same command

The trainer uses a custom loop (`strategy.run`), which works under every strategy; Keras 3's
`model.fit` does not under MultiWorkerMirroredStrategy (keras-team/keras#20585).
MultiWorkerMirroredStrategy must be made before TensorFlow runs any op: call `make_strategy`
before reading data.
"""

from __future__ import annotations

import json
import os

import tensorflow as tf

from t2t_multimodel.errors import UserError

STRATEGIES = ("default", "mirrored", "multi_worker")


class StrategyError(UserError, ValueError):
  """An unknown strategy, or a multi-worker run without a usable TF_CONFIG."""


def make_strategy(name: str) -> tf.distribute.Strategy:
  """The strategy called `name` (one of STRATEGIES).

  Example:
    >>> strategy = make_strategy("mirrored")
    >>> strategy.num_replicas_in_sync
  """
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy(devices=[d.name for d in devices])
  if name == "multi_worker":
    _check_tf_config()
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise StrategyError(f"Unknown strategy {name!r}. Known strategies: {', '.join(STRATEGIES)}")


def _check_tf_config() -> None:
  raw = os.environ.get("TF_CONFIG")
  if not raw:
    raise StrategyError("--strategy=multi_worker reads the cluster from the TF_CONFIG environment "
                        "variable, which is not set.")
  try:
    config = json.loads(raw)
    cluster, task_type, index = config["cluster"], config["task"]["type"], config["task"]["index"]
    members = cluster[task_type]
    if not isinstance(index, int) or not 0 <= index < len(members):
      raise IndexError(f"task index {index!r} of {task_type!r} is not in 0..{len(members) - 1}")
  except (ValueError, KeyError, TypeError, IndexError) as e:
    raise StrategyError(f"TF_CONFIG is not a valid cluster description ({type(e).__name__}: {e}): "
                        f"{raw}") from None


def task(strategy: tf.distribute.Strategy) -> tuple[str | None, int]:
  """(task type, task index) of this process; (None, 0) without a cluster."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not resolver.task_type:
    return None, 0
  return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """True on the one process that writes checkpoints, summaries and metrics."""
  task_type, task_id = task(strategy)
  if task_type is None or task_type == "chief":
    return True
  if task_type != "worker":
    return False
  return task_id == 0 and "chief" not in strategy.cluster_resolver.cluster_spec().as_dict()


def same_on_all_workers(strategy: tf.distribute.Strategy, value: int, what: str) -> None:
  """Checks that every worker of a multi-worker run holds the same `value` (a barrier too).

  Every worker gets the same values, so all of them raise together rather than some waiting.

  Raises:
    StrategyError: the workers differ, e.g. they restored checkpoints of different steps.
  """
  if task(strategy)[0] is None:
    return
  per_replica = strategy.run(lambda: tf.constant([value], tf.int64))
  values = sorted(set(strategy.gather(per_replica, axis=0).numpy().tolist()))
  if len(values) > 1:
    raise StrategyError(f"The workers disagree on {what}: {values}. Every worker must run the "
                        f"same command on the same output_dir.")


def is_distributed(strategy: tf.distribute.Strategy) -> bool:
  """False for tf.distribute's default strategy, True for the others (even on one device)."""
  with strategy.scope():
    return tf.distribute.has_strategy()
