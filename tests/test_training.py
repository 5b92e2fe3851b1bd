"""The joint training loop on real data: metrics, logs, resuming, NaN handling, learning."""

import logging
import math
import types

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.data import data_dir as data_dir_lib
from t2t_multimodel.data.mixing import ProblemSampler
from t2t_multimodel.errors import UserError
from t2t_multimodel.evaluate import evaluator
from t2t_multimodel.hparams.multimodel import multimodel_tiny
from t2t_multimodel.run import checkpointing, run_dir
from t2t_multimodel.run.run_config import resolve_config
from t2t_multimodel.train import optimization, training
from t2t_multimodel.vocab import VOCAB_FILENAME

TWO_PROBLEMS = "image_digits,translate_ende_bible"


def _config(data_dir, output_dir, tiny_hparams, train_steps, problems=TWO_PROBLEMS, extra="", **flags):
  flags = {"eval_every": 0, "eval_examples": 8, "checkpoint_every": 100, "log_every": 2, **flags}
  overrides = dict(item.split("=") for item in filter(None, f"{tiny_hparams},{extra}".split(",")))
  return resolve_config(problems=problems, hparams_set="multimodel_tiny",
                        hparams=",".join(f"{k}={v}" for k, v in overrides.items()), data_dir=data_dir,
                        output_dir=str(output_dir), train_steps=train_steps, **flags)


def _weights(trainer):
  return [np.array(v) for v in trainer.model.variables + trainer.optimizer.variables]


def test_schedule_peaks_at_the_learning_rate_hparam():
  schedule = optimization.WarmupRsqrtSchedule(2e-3, warmup_steps=100)
  assert float(schedule(0)) == pytest.approx(2e-3 / 100, rel=1e-5)   # step 1 of warmup
  assert float(schedule(49)) == pytest.approx(1e-3, rel=1e-5)         # linear: half way, half
  assert float(schedule(99)) == pytest.approx(2e-3, rel=1e-5)         # the peak is learning_rate
  assert float(schedule(399)) == pytest.approx(1e-3, rel=1e-5)        # rsqrt: 4x the steps, half
  assert max(float(schedule(s)) for s in range(0, 400, 7)) <= 2e-3 * (1 + 1e-6)
  restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
  assert isinstance(restored, optimization.WarmupRsqrtSchedule)
  assert restored.get_config() == schedule.get_config() == {"learning_rate": 2e-3, "warmup_steps": 100}
  hp = multimodel_tiny()
  assert float(optimization.make_schedule(hp)(hp.learning_rate_warmup_steps - 1)) == pytest.approx(
      hp.learning_rate, rel=1e-5)
  with pytest.raises(ValueError, match="Expected `warmup_steps` >= 1. Received: warmup_steps=0"):
    optimization.WarmupRsqrtSchedule(1e-3, warmup_steps=0)


def test_joint_training_writes_metrics_logs_and_checkpoints(train_data_dir, tiny_hparams, tmp_path):
  config = _config(train_data_dir, tmp_path, tiny_hparams, 6, eval_every=3, checkpoint_every=3)
  trainer = training.Trainer(config)
  results = trainer.train()
  records = run_dir.read_jsonl(str(tmp_path / run_dir.METRICS_FILE))
  assert [(r["step"], r["split"], r["problem"]) for r in records] == [
      (3, "dev", "image_digits"), (3, "dev", "translate_ende_bible"),
      (6, "dev", "image_digits"), (6, "dev", "translate_ende_bible"),
      (6, "test", "image_digits"), (6, "test", "translate_ende_bible")]
  for record in records:
    declared = {"image_digits": ["accuracy", "accuracy_top5"],
                "translate_ende_bible": ["bleu", "accuracy", "neg_log_perplexity"]}[record["problem"]]
    assert all(math.isfinite(record[name]) for name in declared + ["loss"])
  assert results["test"]["image_digits"] == {k: v for k, v in records[4].items()
                                             if k not in ("step", "problem", "split", "examples")}
  # Periodic dev evaluations score the seeded sample; the final ones whole splits, as mm-evaluate.
  counts = data_dir_lib.dataset_sizes(config.problems, train_data_dir, "test")
  dev = data_dir_lib.dataset_sizes(config.problems, train_data_dir, "dev")
  assert [r["examples"] for r in records] == [8, 8, dev["image_digits"], dev["translate_ende_bible"],
                                              counts["image_digits"], counts["translate_ende_bible"]]
  written = evaluator.read_results(str(tmp_path), "test")
  assert written["step"] == 6 and written["decoding"]["beam_size"] == 1
  assert {name: entry["examples"] for name, entry in written["problems"].items()} == counts
  assert written["problems"]["image_digits"]["metrics"] == results["test"]["image_digits"]
  # Each step trained the problem the sampler drew, with one traced function per problem.
  log = run_dir.read_jsonl(str(tmp_path / run_dir.TRAIN_LOG_FILE))
  assert [r["step"] for r in log] == [2, 4, 6]
  drawn = {}
  for record in log:
    for name, n in record["steps"].items():
      drawn[name] = drawn.get(name, 0) + n
  counts = ProblemSampler(config.rates, config.seed).counts(6)
  assert drawn == {name: n for name, n in counts.items() if n}
  # The auxiliary losses (here the MoE balancing losses) are logged apart from the cross-entropy.
  for record in log:
    assert sorted(record["aux_loss"]) == sorted(record["loss"])
    assert all(0 < record["aux_loss"][name] < 0.1 * record["loss"][name] for name in record["loss"])
  assert {name: fn.experimental_get_tracing_count() for name, fn in trainer.train_functions.items()} == {
      name: 1 for name in drawn}
  decodes = run_dir.read_jsonl(str(tmp_path / run_dir.DECODES_FILE))
  translations = [d for d in decodes if d["problem"] == "translate_ende_bible" and d["split"] == "test"]
  assert len(translations) == 3 and all(d["input"] and d["reference"] for d in translations)
  assert checkpointing.latest_step(str(tmp_path)) == 6
  assert (tmp_path / VOCAB_FILENAME).read_bytes() == open(f"{train_data_dir}/{VOCAB_FILENAME}", "rb").read()
  for split in ("train", "dev", "test"):
    assert list((tmp_path / "tensorboard" / split).glob("events.out.tfevents.*"))


def test_the_capacity_dispatch_logs_its_dropped_share_with_the_losses(train_data_dir, tiny_hparams,
                                                                      tmp_path):
  # A capacity factor of 0.25 leaves room for a quarter of the assignments: most are dropped.
  config = _config(train_data_dir, tmp_path / "capacity", tiny_hparams, 4,
                   problems="translate_ende_bible", extra="moe_dispatch=capacity,moe_capacity_factor=0.25",
                   final_eval_splits=())
  training.Trainer(config).train()
  log = run_dir.read_jsonl(str(tmp_path / "capacity" / run_dir.TRAIN_LOG_FILE))
  assert [sorted(r["moe_dropped"]) for r in log] == [["translate_ende_bible"]] * 2
  assert all(0.5 < r["moe_dropped"]["translate_ende_bible"] < 1.0 for r in log)
  # The dropless dispatch drops nothing and logs no share.
  config = _config(train_data_dir, tmp_path / "dropless", tiny_hparams, 2,
                   problems="translate_ende_bible", final_eval_splits=())
  training.Trainer(config).train()
  assert "moe_dropped" not in run_dir.read_jsonl(str(tmp_path / "dropless" / run_dir.TRAIN_LOG_FILE))[0]


def test_mixed_precision_trains_in_float16_with_loss_scaling(train_data_dir, tiny_hparams, tmp_path):
  config = _config(train_data_dir, tmp_path, tiny_hparams, 4, extra="mixed_precision=True",
                   final_eval_splits=())
  trainer = training.Trainer(config)
  assert keras.config.dtype_policy().name == "float32"  # the global policy is left as it was
  assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)
  dense = trainer.model.modality_nets["symbol"].softmax
  assert (dense.dtype_policy.name, dense.compute_dtype) == ("float32", "float32")  # float32 logits
  assert trainer.model.encoder.moe.compute_dtype == "float16"
  assert all(v.dtype == "float32" for v in trainer.model.trainable_variables)
  before = [np.array(v) for v in trainer.model.trainable_variables]
  trainer.train()
  log = run_dir.read_jsonl(str(tmp_path / run_dir.TRAIN_LOG_FILE))
  assert all(math.isfinite(loss) for record in log for loss in record["loss"].values())
  assert trainer.optimizer.iterations.numpy() == 4 and float(trainer.optimizer.dynamic_scale) > 1.0
  changed = [np.any(np.array(v) != b) for v, b in zip(trainer.model.trainable_variables, before)]
  assert sum(changed) > len(changed) // 2


@pytest.mark.parametrize("own_steps", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_resumed_run_equals_an_uninterrupted_one(train_data_dir, tiny_hparams, tmp_path, caplog,
                                                 own_steps):
  # Each step trains one of two problems, so OwnStepAdam's counts differ between variables.
  flags = {"final_eval_splits": (), "extra": f"adam_own_steps={own_steps}"}   # compared: weights
  straight = training.Trainer(_config(train_data_dir, tmp_path / "straight", tiny_hparams, 6, **flags))
  straight.train()
  training.Trainer(_config(train_data_dir, tmp_path / "resumed", tiny_hparams, 3, **flags)).train()
  resumed = training.Trainer(_config(train_data_dir, tmp_path / "resumed", tiny_hparams, 6, **flags))
  with caplog.at_level(logging.INFO, logger="t2t_multimodel.train.training"):
    resumed.train()
  assert "Resuming from step 3" in caplog.text
  # The recipe is stated at the start: peak learning rate, warmup, Adam, batch rule (tiny_hparams).
  assert "peak learning rate 0.0018 at step 10" in caplog.text and "4 examples a batch" in caplog.text
  assert ("each variable's own updates" in caplog.text) == own_steps
  assert ("Adam (one fused kernel per variable)" in caplog.text) == (not own_steps)
  if own_steps:
    counts = sorted({float(s.numpy()) for s in resumed.optimizer._own_steps})
    assert counts[-1] == 6.0 and len(counts) > 1   # the body: every step; a problem's top: fewer
  for a, b in zip(_weights(straight), _weights(resumed)):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("extra, message", [
    ("batch_size=3", "Expected `batch_size` divisible by the 2 replicas. Received: batch_size=3"),
    ("batch_size=4,batch_tokens=101",
     "Expected `batch_tokens` divisible by the 2 replicas. Received: batch_tokens=101"),
])
def test_the_batch_rule_must_divide_over_the_replicas(train_data_dir, tiny_hparams, tmp_path, extra,
                                                       message):
  two_replicas = types.SimpleNamespace(num_replicas_in_sync=2, cluster_resolver=None)
  config = _config(train_data_dir, tmp_path, tiny_hparams, 1, extra=extra)
  with pytest.raises(UserError, match=message):
    training.Trainer(config, strategy=two_replicas)


def test_nan_loss_stops_with_the_problem_and_step_and_keeps_the_last_good_checkpoint(
    train_data_dir, tiny_hparams, tmp_path):
  config = _config(train_data_dir, tmp_path, tiny_hparams, 30, problems="image_digits",
                   extra="learning_rate=1e30,clip_grad_norm=0.0", checkpoint_every=1)
  with pytest.raises(training.TrainingDivergedError) as raised:
    training.Trainer(config).train()
  message = str(raised.value)
  step = int(message.split(" at step ")[1].split()[0])
  assert f"at step {step} on problem image_digits" in message
  assert checkpointing.latest_step(str(tmp_path)) == step - 1
  assert f"last good checkpoint, step {step - 1}" in message
  reader = tf.train.load_checkpoint(str(tmp_path / "checkpoints" / f"ckpt-{step - 1}"))
  floats = [name for name, dtype in reader.get_variable_to_dtype_map().items() if dtype.is_floating]
  assert floats   # (the data iterators' states are variants, not readable as arrays)
  assert all(np.all(np.isfinite(reader.get_tensor(name))) for name in floats)
  assert all(r["step"] < step for r in run_dir.read_jsonl(str(tmp_path / run_dir.METRICS_FILE)))
