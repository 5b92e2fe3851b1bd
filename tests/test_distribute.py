"""The trainer's tf.distribute paths on CPU: two local workers, two logical CPU replicas, TF_CONFIG.

Run as a script (`python tests/test_distribute.py DATA_DIR OUT HPARAMS`), this module splits the
CPU into two logical devices before TensorFlow starts and trains under MirroredStrategy; the
mirrored test runs it in a subprocess, since pytest's process has TensorFlow started already.
"""

import json
import math
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from t2t_multimodel.run import checkpointing, distribute, run_dir

TRAINER = os.path.join(os.path.dirname(sys.executable), "mm-trainer")
PROBLEMS = "image_digits,translate_ende_bible"
# The settings under which 2 replicas must compute what one device computes: no dropout and no
# MoE. The gating noise is random per token even with moe_noise_eps=0 (its scale is
# softplus(x W_noise) + eps, softplus(0) = 0.69 at initialisation), so replicas route tokens
# differently from one device; and each replica would balance the load of its own half batch.
EXACT = "dropout=0.0,attention_dropout=0.0,use_moe=False"


def _trainer_args(data_dir, output_dir, hparams, *extra):
  return [f"--problems={PROBLEMS}", "--hparams_set=multimodel_tiny", f"--hparams={hparams}",
          f"--data_dir={data_dir}", f"--output_dir={output_dir}", "--eval_every=0",
          "--eval_examples=8", "--final_eval_splits=test", *extra]


def _free_ports(n: int) -> list[int]:
  sockets = [socket.socket() for _ in range(n)]
  try:
    for s in sockets:
      s.bind(("127.0.0.1", 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def _run_workers(log_dir, args_of_worker, timeout=900) -> list[tuple[int, str]]:
  """Runs one mm-trainer per worker of a local cluster; [(exit code, stderr)] in worker order.

  A worker that fails makes the others wait for it forever, so the first failure (or the
  timeout) kills every worker still running.
  """
  cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(len(args_of_worker))]}
  processes, logs = [], []
  try:
    for index, args in enumerate(args_of_worker):
      tf_config = {"cluster": cluster, "task": {"type": "worker", "index": index}}
      logs.append(log_dir / f"worker_{index}.stderr")
      with open(logs[-1], "w") as stderr:
        processes.append(subprocess.Popen(
            [TRAINER, *args, "--strategy=multi_worker"], stdout=subprocess.DEVNULL, stderr=stderr,
            env={**os.environ, "TF_CONFIG": json.dumps(tf_config)}))
    deadline = time.monotonic() + timeout
    while any(p.poll() is None for p in processes):
      if any(p.poll() for p in processes) or time.monotonic() > deadline:
        break
      time.sleep(0.5)
  finally:
    for p in processes:
      if p.poll() is None:
        p.kill()
      p.wait()
  return [(p.returncode, path.read_text()) for p, path in zip(processes, logs)]


def _assert_all_ok(results):
  for index, (code, stderr) in enumerate(results):
    assert code == 0, f"worker {index} exited {code}:\n{stderr[-3000:]}"


def _float_tensors(path: str) -> dict[str, np.ndarray]:
  import tensorflow as tf

  reader = tf.train.load_checkpoint(path)
  return {name: reader.get_tensor(name) for name, dtype in reader.get_variable_to_dtype_map().items()
          if dtype.is_floating}


def _assert_same_weights(path_a: str, path_b: str):
  a, b = _float_tensors(path_a), _float_tensors(path_b)
  assert sorted(a) == sorted(b)
  assert any(name.startswith("model/") for name in a) and any(name.startswith("optimizer/") for name in a)
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _metric_keys(output_dir) -> list[tuple[int, str, str]]:
  return [(r["step"], r["split"], r["problem"])
          for r in run_dir.read_jsonl(os.path.join(output_dir, run_dir.METRICS_FILE))]


def _final_keys(step: int) -> list[tuple[int, str, str]]:
  return [(step, "test", problem) for problem in PROBLEMS.split(",")]


# --- MultiWorkerMirroredStrategy: 2 processes sharing one output_dir. ------------------------------

def _two_worker_run(data_dir, hparams, tmp_path):
  """2 steps of 2 workers into tmp_path/run; returns its args and the run dir."""
  output_dir = tmp_path / "run"
  args = _trainer_args(data_dir, output_dir, hparams, "--checkpoint_every=1")
  _assert_all_ok(_run_workers(tmp_path, [args + ["--train_steps=2"]] * 2))
  assert checkpointing.latest_step(str(output_dir)) == 2
  return args, output_dir


def _assert_workers_equal(output_dir, step: int):
  checkpoints = checkpointing.checkpoint_dir(str(output_dir))
  _assert_same_weights(os.path.join(checkpoints, f"ckpt-{step}"),
                       os.path.join(checkpoints, "worker_1", f"ckpt-{step}"))


def test_two_workers_train_in_step_and_only_the_chief_writes(train_data_dir, tiny_hparams, tmp_path):
  _, output_dir = _two_worker_run(train_data_dir, tiny_hparams, tmp_path)
  _assert_workers_equal(output_dir, 2)
  # One record per problem and split, not one per worker.
  assert _metric_keys(output_dir) == _final_keys(2)
  assert [r["step"] for r in run_dir.read_jsonl(str(output_dir / run_dir.TRAIN_LOG_FILE))] == [2]
  for split in ("train", "test"):   # (the run evaluates only test at its end)
    assert len(list((output_dir / "tensorboard" / split).glob("events.out.tfevents.*"))) == 1


@pytest.mark.slow
def test_two_workers_resume_and_refuse_different_commands(train_data_dir, tiny_hparams, tmp_path):
  args, output_dir = _two_worker_run(train_data_dir, tiny_hparams, tmp_path)
  # Workers that disagree on the command stop together, with one line each, before training.
  results = _run_workers(tmp_path, [args + ["--train_steps=4"], args + ["--train_steps=3"]])
  for code, stderr in results:
    assert code == 2 and "mm-trainer: error: The workers disagree on --train_steps: [3, 4]" in stderr
  assert checkpointing.latest_step(str(output_dir)) == 2

  results = _run_workers(tmp_path, [args + ["--train_steps=4"]] * 2)
  _assert_all_ok(results)
  assert all("Resuming from step 2" in stderr for _, stderr in results)
  assert checkpointing.latest_step(str(output_dir)) == 4
  _assert_workers_equal(output_dir, 4)
  assert _metric_keys(output_dir) == _final_keys(2) + _final_keys(4)


# --- MirroredStrategy over 2 logical CPU devices, in a child process. ------------------------------

def _mirrored_child(data_dir: str, output_dir: str, hparams: str) -> dict:
  """Trains under MirroredStrategy (2 CPU replicas) and steps it beside the default strategy."""
  import tensorflow as tf

  cpu = tf.config.list_physical_devices("CPU")[0]
  tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
  from t2t_multimodel.data import inputs
  from t2t_multimodel.run.run_config import resolve_config
  from t2t_multimodel.train import training

  def config(name, extra=""):
    return resolve_config(problems=PROBLEMS, hparams_set="multimodel_tiny", hparams=hparams + extra,
                          data_dir=data_dir, output_dir=os.path.join(output_dir, name), train_steps=2,
                          eval_every=0, eval_examples=8, log_every=1, final_eval_splits=("test",))

  strategy = distribute.make_strategy("mirrored")
  report = {"replicas": strategy.num_replicas_in_sync}
  training.train(config("mirrored"), strategy)
  # Mixed precision under the strategy: float16 replicas, one loss-scaled optimizer.
  fp16 = training.Trainer(config("mirrored_fp16", ",mixed_precision=True"), strategy)
  fp16.train()
  report["fp16_scale"] = float(fp16.optimizer.dynamic_scale.value.numpy())  # a MirroredVariable
  report["fp16_moe_dtype"] = fp16.model.encoder.moe.compute_dtype

  # The same batches (each split in two halves under MirroredStrategy) through both train steps:
  # the text batches have different token counts in their halves.
  single = training.Trainer(config("single", "," + EXACT))
  mirrored = training.Trainer(config("mirrored_exact", "," + EXACT), strategy)
  report["losses"], report["half_token_counts"] = [], []
  for problem in single.config.problems:
    batches = inputs.problem_dataset(problem, "train", data_dir, single.config.hparams, training=True,
                                     seed=0).take(2)
    for batch in batches:
      if problem.name == "translate_ende_bible":
        real = tf.reduce_sum(tf.cast(batch["targets"] != 0, tf.int32), axis=1)
        report["half_token_counts"].append([int(tf.reduce_sum(real[:2])), int(tf.reduce_sum(real[2:]))])
      halves = iter(strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensors(batch)))
      report["losses"].append([float(single._train_fn(problem.name, batches.element_spec)(batch)[0]),
                               float(mirrored._train_fn(problem.name, halves.element_spec)(next(halves))[0])])
  weights = [(np.array(a), np.array(b)) for a, b in zip(single.model.variables + single.optimizer.variables,
                                                        mirrored.model.variables + mirrored.optimizer.variables)]
  report["steps"] = [int(single.optimizer.iterations.numpy()), int(mirrored.optimizer.iterations.numpy())]
  report["max_weight_diff"] = max(float(np.abs(a - b).max()) for a, b in weights if a.dtype.kind == "f")
  report["max_weight_change"] = max(float(np.abs(a).max()) for a, _ in weights[:len(single.model.variables)])
  return report


@pytest.mark.slow  # ~3 min on 2 quiet cores: in `make test-all`, to keep `make test` under 15 min
def test_two_mirrored_cpu_replicas_train_and_equal_one_device(train_data_dir, tiny_hparams, tmp_path):
  result = subprocess.run([sys.executable, __file__, train_data_dir, str(tmp_path), tiny_hparams],
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout.strip().splitlines()[-1])
  assert report["replicas"] == 2
  assert report["fp16_moe_dtype"] == "float16" and report["fp16_scale"] > 1.0
  fp16_log = run_dir.read_jsonl(str(tmp_path / "mirrored_fp16" / run_dir.TRAIN_LOG_FILE))
  assert [r["step"] for r in fp16_log] == [1, 2]
  assert all(math.isfinite(loss) for record in fp16_log for loss in record["loss"].values())
  # End to end: it trains, evaluates and checkpoints like a one-device run.
  output_dir = tmp_path / "mirrored"
  assert checkpointing.latest_step(str(output_dir)) == 2
  assert _metric_keys(output_dir) == _final_keys(2)
  log = run_dir.read_jsonl(str(output_dir / run_dir.TRAIN_LOG_FILE))
  assert [r["step"] for r in log] == [1, 2]
  assert all(math.isfinite(loss) for record in log for loss in record["loss"].values())
  # Equivalence: same losses, same weights after 4 updates, also with unequal halves.
  assert report["steps"] == [4, 4]
  assert any(a != b for a, b in report["half_token_counts"]), report
  for single, mirrored in report["losses"]:
    assert mirrored == pytest.approx(single, rel=1e-5), report
  assert report["max_weight_diff"] < 1e-5, report


# --- TF_CONFIG mistakes. ---------------------------------------------------------------------------

@pytest.mark.parametrize("tf_config, message", [
    (None, "which is not set"),
    ("{cluster: worker}", "TF_CONFIG is not a valid cluster description (JSONDecodeError"),
])
def test_a_bad_tf_config_is_one_line(train_data_dir, tmp_path, tf_config, message):
  env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
  if tf_config is not None:
    env["TF_CONFIG"] = tf_config
  result = subprocess.run([TRAINER, *_trainer_args(train_data_dir, tmp_path / "run", "", "--train_steps=2",
                                                   "--strategy=multi_worker")],
                          capture_output=True, text=True, timeout=300, env=env)
  assert result.returncode == 2, result.stderr[-3000:]
  lines = [line for line in result.stderr.splitlines() if line.startswith("mm-trainer: error: ")]
  assert len(lines) == 1 and message in lines[0], result.stderr[-3000:]
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("tf_config, message", [
    ({"cluster": {"worker": ["127.0.0.1:1"]}}, "KeyError: 'task'"),
    ({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker"}}, "KeyError: 'index'"),
    ({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "chief", "index": 0}}, "KeyError: 'chief'"),
    ({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}},
     "task index 1 of 'worker' is not in 0..0"),
    ({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": "0"}},
     "task index '0' of 'worker'"),
    (["worker"], "TypeError"),
])
def test_tf_config_is_checked_before_making_the_strategy(monkeypatch, tf_config, message):
  monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
  with pytest.raises(distribute.StrategyError, match="TF_CONFIG is not a valid cluster") as raised:
    distribute.make_strategy("multi_worker")
  assert message in str(raised.value)


if __name__ == "__main__":
  print(json.dumps(_mirrored_child(*sys.argv[1:4])))
