"""Joint multi-problem training of a MultiModel with a custom loop (T2T's trainer, TF 2 style).

Every step draws one problem from the mixing rule (`mixing.ProblemSampler`, a pure function of
seed and step), takes the next batch of that problem, and runs that problem's compiled train
step: one shared model, command tokens, one Adam optimiser for all problems. A train step is
one tf.function per problem (the problem is a Python-level argument), cached in a dict.

The loss is the problem's label-smoothed cross-entropy plus the model's auxiliary losses
(model.losses: the MoE balancing losses and, for audio inputs with `audio_ctc_weight`, the CTC
loss); the training log keeps the two apart ("loss" and "aux_loss"). Under a distribution
strategy each replica's token loss is divided by the global token count of the step, so the
replicas' gradients sum to the gradient of the global mean; the summed gradient is clipped by
its global norm (clip_grad_norm) before Adam applies it. The learning rate warms up linearly to
its peak, the `learning_rate` hparam, at step `learning_rate_warmup_steps`, then decays as
1/sqrt(step) (optimization.py); with `mixed_precision` the model computes in float16 and the loss
is scaled dynamically.

Evaluation every `eval_every` steps on a fixed, seeded sample of `eval_examples` dev examples per
problem, and at the end on the whole dev and test splits, written to O/eval_{dev,test}.json as
mm-evaluate writes them (see evaluate/evaluation.py and evaluate/evaluator.py); checkpoints every
`checkpoint_every` steps and at the end (see checkpointing.py); a rerun of the same command
resumes from the newest checkpoint and continues with the same batches. A non-finite loss stops
training (TrainingDivergedError) without saving, so the last good checkpoint stays the newest.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import os
import time

import keras
import tensorflow as tf
from tensorflow.core.framework import summary_pb2
from tqdm import tqdm

from t2t_multimodel.data import inputs, shards
from t2t_multimodel.data.mixing import ProblemSampler
from t2t_multimodel.errors import UserError
from t2t_multimodel.evaluate import evaluation, evaluator
from t2t_multimodel.model.multimodel import MODELS
from t2t_multimodel.problem import SPLITS
from t2t_multimodel.run import checkpointing, distribute, run_dir
from t2t_multimodel.run.run_config import RunConfig
from t2t_multimodel.train.optimization import dtype_policy, loss_scale, make_optimizer, make_schedule
from t2t_multimodel.vocab import load_vocab

log = logging.getLogger(__name__)
# TensorBoard's scalar plugin reads these summaries; tf.summary.scalar itself needs the
# tensorboard package, which TensorFlow 2.21 no longer installs.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")).SerializeToString()


def write_scalar(tag: str, value: float, step: int) -> None:
  """A TensorBoard scalar in the default tf.summary writer (without the tensorboard package)."""
  tf.summary.write(tag, tf.constant(value, tf.float32), step=step, metadata=_SCALAR_METADATA)


class TrainingDivergedError(UserError, FloatingPointError):
  """The loss became NaN or infinite; the message names the problem and the step."""


def check_data(config: RunConfig) -> None:
  """Reads every shard of every split whole; CorruptDataError (one line naming the file) if bad."""
  for problem in config.problems:
    for split in SPLITS:
      shards.check_shards(problem, split, config.data_dir)


def train(config: RunConfig, strategy: tf.distribute.Strategy | None = None) -> dict:
  """Trains (or resumes) the run of `config`; returns the final {split: {problem: metrics}}."""
  return Trainer(config, strategy).train()


class Trainer:
  """Builds the model, optimizer, data and evaluation of a run, and runs the training loop.

  Args:
    config: the resolved run (see run_config.resolve_config).
    strategy: a tf.distribute strategy (see distribute.make_strategy); default: none.

  Example:
    >>> config = resolve_config(problems="image_digits", hparams_set="multimodel_tiny", ...)
    >>> results = Trainer(config).train()
    >>> results["test"]["image_digits"]["accuracy"]
  """

  def __init__(self, config: RunConfig, strategy: tf.distribute.Strategy | None = None):
    self.config = config
    self.strategy = strategy or tf.distribute.get_strategy()
    self.chief = distribute.is_chief(self.strategy)
    self.replicas = self.strategy.num_replicas_in_sync
    hp = config.hparams
    rule = "batch_tokens" if hp.batch_tokens else "batch_size"  # the one that sizes training batches
    if getattr(hp, rule) % self.replicas:
      raise UserError(f"Expected `{rule}` divisible by the {self.replicas} replicas. "
                      f"Received: {rule}={getattr(hp, rule)}")
    keras.utils.set_random_seed(config.seed)
    with self.strategy.scope(), dtype_policy(hp):
      self.model = MODELS.get(hp.model)(hp, [p.signature() for p in config.problems])
      self.model.build_all()
      self.schedule = make_schedule(hp)
      self.optimizer = make_optimizer(hp, self.schedule)
      self.optimizer.build(self.model.trainable_variables)
    self.sampler = ProblemSampler(config.rates, config.seed)
    self.vocab = load_vocab(config.data_dir) if any(p.has_text for p in config.problems) else None
    self.evaluator = evaluation.Evaluator(self.model, config.problems, hp, config.data_dir,
                                          self.vocab, seed=config.seed)
    self._moe_layers = self.model.moe_layers()
    # Only the capacity dispatch drops assignments: its dropped share is logged with the losses.
    self._moe_capacity = bool(self._moe_layers) and hp.moe_dispatch == "capacity"
    self._train_fns: dict[str, tf.types.experimental.PolymorphicFunction] = {}
    self._writers: dict[str, tf.summary.SummaryWriter] = {}
    self._path = functools.partial(os.path.join, config.output_dir)

  @property
  def train_functions(self) -> dict[str, tf.types.experimental.PolymorphicFunction]:
    """Problem name -> its compiled train step (traced on the problem's first step)."""
    return dict(self._train_fns)

  # --- The loop. ---------------------------------------------------------------------------------

  def train(self) -> dict:
    config = self.config
    run_dir.prepare(config.output_dir, config.hparams, config.record(), overwrite=config.overwrite,
                    write=self.chief)
    if self.chief and self.vocab is not None:  # the run keeps the vocabulary it was trained with
      run_dir.copy_vocab(config.data_dir, config.output_dir)
    # A barrier: no worker reads O/checkpoints before the chief has cleared it (--overwrite).
    distribute.same_on_all_workers(self.strategy, config.train_steps, "--train_steps")
    checkpoint_iterators = not distribute.is_distributed(self.strategy)
    iterators = self._iterators({}) if checkpoint_iterators else None
    ckpt = checkpointing.RunCheckpoint(config.output_dir, self.model, self.optimizer,
                                       strategy=self.strategy, keep=config.keep_checkpoints,
                                       iterators=iterators)
    step = ckpt.restore()
    distribute.same_on_all_workers(self.strategy, step, "the step to resume from")
    if step:
      log.info("Resuming from step %d", step)
    self._forget_logs_after(step)
    if iterators is None:
      iterators = self._iterators(self.sampler.counts(step))
    if step >= config.train_steps:
      log.info("The run in %s is at step %d >= --train_steps=%d: nothing to train.",
               config.output_dir, step, config.train_steps)
      return self._final_results(step)
    self._log_recipe()
    with self._summary_writer("train").as_default():
      step = self._loop(step, iterators, ckpt)
    results = self._evaluate(step, config.final_eval_splits, final=True)
    ckpt.save(step)
    return results

  def _loop(self, step: int, iterators: dict, ckpt: checkpointing.RunCheckpoint) -> int:
    config = self.config
    window = _LossWindow(step)
    with tqdm(total=config.train_steps, initial=step, unit="step", disable=not self.chief,
              dynamic_ncols=True, mininterval=1.0) as progress:
      while step < config.train_steps:
        problem = self.sampler.problem_at(step)
        batch = self._next_batch(iterators, problem)
        loss, aux, dropped = self._train_fn(problem, iterators[problem].element_spec)(batch)
        loss, aux = float(loss), float(aux)
        if not math.isfinite(loss):
          raise TrainingDivergedError(self._diverged_message(loss, step + 1, problem, ckpt))
        step += 1
        window.add(problem, loss - aux, aux, float(dropped) if self._moe_capacity else None)
        progress.update(1)
        progress.set_postfix(loss=f"{window.mean():.3f}", problem=problem, refresh=False)
        if step % config.log_every == 0 or step == config.train_steps:
          self._log_training(step, window.flush(step))
        if config.eval_every and step % config.eval_every == 0 and step < config.train_steps:
          self._evaluate(step, ("dev",))
        if step % config.checkpoint_every == 0 and step < config.train_steps:
          ckpt.save(step)
    return step

  def _next_batch(self, iterators: dict, problem: str):
    try:
      return next(iterators[problem])
    except tf.errors.OpError as e:
      corrupt = shards.as_corrupt_data_error(e)
      if corrupt is not None:
        raise corrupt from None
      raise

  def _diverged_message(self, loss: float, step: int, problem: str,
                        ckpt: checkpointing.RunCheckpoint) -> str:
    latest = ckpt.latest()
    kept = (f"the last good checkpoint, step {checkpointing.step_of(latest)}, is kept in "
            f"{os.path.dirname(latest)}" if latest else "no checkpoint was written")
    return (f"Loss became {loss} at step {step} on problem {problem}; training stopped and "
            f"{kept}. Lower learning_rate or raise learning_rate_warmup_steps (with --overwrite "
            f"to start over).")

  # --- One train step per problem. ---------------------------------------------------------------

  def _train_fn(self, problem: str, batch_spec):
    """The compiled train step of `problem`: one trace for every batch shape of its pipeline."""
    if problem not in self._train_fns:
      replica_step = functools.partial(self._replica_step, problem=problem)

      def train_step(batch):
        loss, aux, dropped = self.strategy.run(replica_step, args=(batch,))
        return (self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None),
                self.strategy.reduce(tf.distribute.ReduceOp.SUM, aux, axis=None),
                self.strategy.reduce(tf.distribute.ReduceOp.MEAN, dropped, axis=None))

      self._train_fns[problem] = tf.function(train_step, input_signature=[batch_spec])
    return self._train_fns[problem]

  def _replica_step(self, batch, problem: str):
    """One replica's part of a step; returns its share of the global mean loss, its share of the
    auxiliary losses in it, and the mean share of MoE assignments its layers dropped for lack of
    capacity (0 when none can drop)."""
    context = tf.distribute.get_replica_context()
    with tf.GradientTape() as tape:
      logits = self.model(batch, problem=problem, training=True)
      mean_loss, count = self.model.problem_loss(problem, batch, logits)
      global_count = context.all_reduce(tf.distribute.ReduceOp.SUM, count)
      aux = (tf.add_n(self.model.losses) / self.replicas if self.model.losses
             else tf.constant(0.0))
      loss = mean_loss * count / tf.maximum(global_count, 1.0) + aux
      scaled_loss = self.optimizer.scale_loss(loss)  # loss * the loss scale (mixed precision)
    dropped = [layer.last_dropped_fraction for layer in self._moe_layers
               if layer.last_dropped_fraction is not None]
    dropped = tf.add_n(dropped) / len(dropped) if dropped else tf.constant(0.0)
    variables = self.model.trainable_variables
    pairs = [(tf.convert_to_tensor(g), v) for g, v in zip(tape.gradient(scaled_loss, variables), variables)
             if g is not None]
    grads = context.all_reduce(tf.distribute.ReduceOp.SUM, [g for g, _ in pairs])  # the global gradient
    if self.config.hparams.clip_grad_norm > 0:  # the norm of the loss-scaled gradient, so scaled
      grads, _ = tf.clip_by_global_norm(
          grads, self.config.hparams.clip_grad_norm * loss_scale(self.optimizer))
    # The optimizer sums the replicas' gradients again: hand it each replica's share.
    self.optimizer.apply([g / self.replicas for g in grads], [v for _, v in pairs])
    return loss, aux, dropped

  # --- Data. -------------------------------------------------------------------------------------

  def _iterators(self, skip: dict[str, int]) -> dict:
    """Problem name -> iterator over its training batches, `skip[name]` steps in."""
    return {p.name: iter(self.strategy.distribute_datasets_from_function(
        functools.partial(self._train_dataset, p, skip.get(p.name, 0)))) for p in self.config.problems}

  def _train_dataset(self, problem, steps_done: int, context: tf.distribute.InputContext):
    hp = self.config.hparams
    # Each replica's batch holds its share of the global batch: examples, or body positions.
    if hp.batch_tokens:
      per_replica = {"batch_tokens": context.get_per_replica_batch_size(hp.batch_tokens)}
    else:
      per_replica = {"batch_size": context.get_per_replica_batch_size(hp.batch_size)}
    local_replicas = context.num_replicas_in_sync // context.num_input_pipelines
    seed = self.config.seed + 7919 * context.input_pipeline_id
    dataset = inputs.problem_dataset(problem, "train", self.config.data_dir,
                                     dataclasses.replace(hp, **per_replica),
                                     training=True, seed=seed)
    return dataset.skip(steps_done * local_replicas) if steps_done else dataset

  # --- Evaluation, logs and summaries. -----------------------------------------------------------

  def _evaluate(self, step: int, splits: tuple[str, ...], final: bool = False) -> dict:
    """Periodic: a seeded sample of `eval_examples` dev examples; final: whole splits."""
    results = {}
    for split in splits:
      by_problem = self.evaluator.evaluate(split, sample=0 if final else self.config.eval_examples)
      results[split] = {name: result.metrics for name, result in by_problem.items()}
      for name, result in by_problem.items():
        log.info("step %d %s %s", step, split, evaluation.summary_line(name, result))
      if not self.chief:
        continue
      run_dir.append_jsonl(self._path(run_dir.METRICS_FILE),
                           evaluation.flat_records(by_problem, step, split))
      with self._summary_writer(split).as_default():
        for name, result in by_problem.items():
          for metric, value in result.metrics.items():
            write_scalar(f"{name}/{metric}", value, step=step)
      if final:
        run_dir.append_jsonl(self._path(run_dir.DECODES_FILE), [
            {"step": step, "problem": name, "split": split, **sample}
            for name, result in by_problem.items() for sample in result.samples])
        evaluator.write_results(
            self.config.output_dir, split, by_problem, step=step,
            checkpoint=os.path.join(self.config.output_dir, run_dir.CHECKPOINT_DIR,
                                    f"{checkpointing.CHECKPOINT_NAME}-{step}"),
            decoding={"beam_size": 1, "alpha": self.evaluator.alpha,
                      "max_length": self.evaluator.max_length}, data_dir=self.config.data_dir)
    return results

  def _log_recipe(self) -> None:
    """One line on what a step does: the learning-rate schedule and the batch rule."""
    hp = self.config.hparams
    if hp.batch_tokens:  # see inputs._bucket_batch_sizes
      batches = (f"about {hp.batch_tokens} tokens a batch (batch_tokens // its length bucket's "
                 f"body positions examples)")
    else:
      batches = f"{hp.batch_size} examples a batch"
    if self.replicas > 1:
      batches += f", split over {self.replicas} replicas"
    adam = ("bias-corrected by each variable's own updates" if hp.adam_own_steps else
            "one fused kernel per variable")
    log.info("Training with peak learning rate %g at step %d (linear warmup, then 1/sqrt(step)), "
             "Adam (%s); %s", hp.learning_rate, hp.learning_rate_warmup_steps, adam, batches)

  def _log_training(self, step: int, record: dict) -> None:
    record["learning_rate"] = float(self.schedule(step - 1))
    losses = ", ".join(f"{name}={value:.3f}" for name, value in record["loss"].items())
    if "moe_dropped" in record:
      losses += "; MoE dropped: " + ", ".join(
          f"{name}={value:.1%}" for name, value in record["moe_dropped"].items())
    log.info("step %d lr %.3g %.2f steps/s loss: %s", step, record["learning_rate"],
             record["steps_per_sec"], losses)
    if not self.chief:
      return
    run_dir.append_jsonl(self._path(run_dir.TRAIN_LOG_FILE), [record])
    write_scalar("learning_rate", record["learning_rate"], step=step)
    write_scalar("steps_per_sec", record["steps_per_sec"], step=step)
    for name, value in record["loss"].items():
      write_scalar(f"{name}/loss", value, step=step)
    for name, value in record["aux_loss"].items():
      write_scalar(f"{name}/aux_loss", value, step=step)
    for name, value in record.get("moe_dropped", {}).items():
      write_scalar(f"{name}/moe_dropped", value, step=step)

  def _summary_writer(self, split: str) -> tf.summary.SummaryWriter:
    if split not in self._writers:
      self._writers[split] = (tf.summary.create_file_writer(self._path(run_dir.TENSORBOARD_DIR, split))
                              if self.chief else tf.summary.create_noop_writer())
    return self._writers[split]

  def _forget_logs_after(self, step: int) -> None:
    """Drops log records of steps after the restored checkpoint: they will be redone."""
    if self.chief:
      for name in (run_dir.METRICS_FILE, run_dir.TRAIN_LOG_FILE, run_dir.DECODES_FILE):
        run_dir.truncate_jsonl(self._path(name), step)

  def _final_results(self, step: int) -> dict:
    results: dict = {}
    for record in run_dir.read_jsonl(self._path(run_dir.METRICS_FILE)):
      if record["step"] == step:
        metrics = {k: v for k, v in record.items()
                   if k not in ("step", "problem", "split", "examples")}
        results.setdefault(record["split"], {})[record["problem"]] = metrics
    return results


class _LossWindow:
  """Per-problem training losses (the cross-entropy and the auxiliary losses apart, and MoE
  dropped shares under the capacity dispatch) since the last log line, and the steps/s over that
  span."""

  def __init__(self, step: int):
    self._start_step, self._start_time = step, time.perf_counter()
    self._losses: dict[str, list[float]] = {}
    self._aux: dict[str, list[float]] = {}
    self._dropped: dict[str, list[float]] = {}
    self._recent: list[float] = []

  def add(self, problem: str, loss: float, aux: float, dropped: float | None = None) -> None:
    self._losses.setdefault(problem, []).append(loss)
    self._aux.setdefault(problem, []).append(aux)
    if dropped is not None:
      self._dropped.setdefault(problem, []).append(dropped)
    self._recent = (self._recent + [loss])[-50:]

  def mean(self) -> float:
    return sum(self._recent) / max(len(self._recent), 1)

  def flush(self, step: int) -> dict:
    now = time.perf_counter()
    record = {"step": step,
              "steps_per_sec": (step - self._start_step) / max(now - self._start_time, 1e-9),
              "loss": {name: sum(v) / len(v) for name, v in sorted(self._losses.items())},
              "aux_loss": {name: sum(v) / len(v) for name, v in sorted(self._aux.items())},
              "steps": {name: len(v) for name, v in sorted(self._losses.items())}}
    if self._dropped:
      record["moe_dropped"] = {name: sum(v) / len(v) for name, v in sorted(self._dropped.items())}
    self._start_step, self._start_time = step, now
    self._losses, self._aux, self._dropped = {}, {}, {}
    return record
