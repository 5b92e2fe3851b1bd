"""`make reproduce`: the paper's Tables 2, 3 and 4 in miniature, on the embedded problems.

Every number comes from an ordinary `mm-trainer` run (a subprocess; there is no second training
code path) and its metrics.jsonl. The experiments:

  Table 2  each problem of mm8_mini alone, and all of them jointly;
  Table 3  parse_trees alone, with image_digits, with all of mm8_mini;
  Table 4  image_digits and translate_enfr_bible alone with all blocks, use_moe=False,
           use_attention=False.

Same number of steps per problem: a run of k problems trains k * steps_per_problem steps with
`--mixing=uniform`, so each problem gets about steps_per_problem batches, as a single run does
(the exact counts drawn by the sampler are printed in the report). Runs shared between tables
(image_digits alone, parse_trees alone, the joint mm8_mini run) are trained once. Each
configuration runs once per seed. A run whose metrics.jsonl already holds its final test
metrics is not started again; an interrupted one resumes from its checkpoint.

  python -m t2t_multimodel.bin.reproduce --data_dir=data/mm8_mini --out_dir=reports [--smoke]
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import subprocess
import sys
import time
from typing import Sequence

from t2t_multimodel.run import run_dir

MM8_MINI = ("image_digits", "translate_ende_bible", "translate_deen_bible", "translate_enfr_bible",
            "translate_fren_bible", "caption_emoji", "speech_espeak", "parse_trees")
ABLATIONS = {"all": "", "no_moe": "use_moe=False", "no_attention": "use_attention=False"}
TABLE4_PROBLEMS = ("image_digits", "translate_enfr_bible")
TABLES = (2, 3, 4)
# --smoke: multimodel_tiny cut down further, so that a run starts, traces and evaluates in seconds.
SMOKE_HPARAMS = ("hidden_size=16,filter_size=16,num_heads=2,num_encoder_blocks=1,num_mixer_blocks=1,"
                 "num_decoder_blocks=1,num_experts=2,large_kernel_size=3,batch_size=4,image_size=8,"
                 "max_input_length=16,max_target_length=16,length_bucket_step=8,audio_blocks=2,"
                 "audio_time_strides=1,learning_rate_warmup_steps=10")


@dataclasses.dataclass(frozen=True)
class Config:
  """One training configuration: its problems and an ablation (a key of ABLATIONS)."""

  problems: tuple[str, ...]
  ablation: str = "all"

  @property
  def name(self) -> str:
    """The run's folder name, e.g. 'image_digits', 'mm8_mini', 'image_digits-no_moe'."""
    base = "mm8_mini" if self.problems == MM8_MINI else "+".join(self.problems)
    return base if self.ablation == "all" else f"{base}-{self.ablation}"

  @property
  def spec(self) -> str:
    """The trainer's --problems value."""
    return "mm8_mini" if self.problems == MM8_MINI else ",".join(self.problems)


@dataclasses.dataclass(frozen=True)
class Settings:
  """What to run and where (see the flags of `main`)."""

  data_dir: str
  runs_dir: str
  out_dir: str
  problems: tuple[str, ...] = MM8_MINI
  tables: tuple[int, ...] = TABLES
  seeds: tuple[int, ...] = (0, 1)
  steps_per_problem: int = 300
  hparams_set: str = "multimodel_tiny"
  hparams: str = ""
  jobs: int = 1
  smoke: bool = False


@dataclasses.dataclass(frozen=True)
class Run:
  """One mm-trainer run: a configuration and a seed."""

  config: Config
  seed: int
  train_steps: int
  output_dir: str

  @property
  def label(self) -> str:
    return f"{self.config.name} seed {self.seed}"


def table_configs(settings: Settings) -> dict[int, dict[str, Config]]:
  """Table -> {row or column key: Config}, for the tables whose problems are available."""
  available = [p for p in MM8_MINI if p in settings.problems]
  everything = tuple(available)
  tables: dict[int, dict[str, Config]] = {}
  if 2 in settings.tables and len(available) >= 2:
    tables[2] = {f"single:{p}": Config((p,)) for p in available}
    tables[2]["joint"] = Config(everything)
  if 3 in settings.tables and {"parse_trees", "image_digits"} <= set(available):
    tables[3] = {"alone": Config(("parse_trees",)),
                 "with_image": Config(("parse_trees", "image_digits")),
                 "with_all": Config(everything)}
  if 4 in settings.tables:
    tables[4] = {f"{ablation}:{p}": Config((p,), ablation)
                 for p in TABLE4_PROBLEMS if p in available for ablation in ABLATIONS}
  return {table: configs for table, configs in tables.items() if configs}


def plan(settings: Settings) -> list[Run]:
  """The distinct runs of every table, seed by seed (all of seed 0 first)."""
  configs: dict[Config, None] = {}
  for table in table_configs(settings).values():
    configs.update(dict.fromkeys(table.values()))
  return [Run(config, seed, settings.steps_per_problem * len(config.problems),
              os.path.join(settings.runs_dir, config.name, f"seed{seed}"))
          for seed in settings.seeds for config in configs]


def final_metrics(run: Run) -> dict[str, dict[str, float]]:
  """{problem: metrics} of the run's final test evaluation; {} if it has not finished."""
  records = run_dir.read_jsonl(os.path.join(run.output_dir, run_dir.METRICS_FILE))
  found = {r["problem"]: {k: v for k, v in r.items() if k not in ("step", "problem", "split")}
           for r in records if r.get("split") == "test" and r.get("step") == run.train_steps}
  return found if set(found) == set(run.config.problems) else {}


def trainer_command(run: Run, settings: Settings) -> list[str]:
  """The mm-trainer command line of `run`."""
  overrides = ",".join(o for o in (settings.hparams, ABLATIONS[run.config.ablation]) if o)
  trainer = os.path.join(os.path.dirname(sys.executable), "mm-trainer")
  return [trainer, f"--problems={run.config.spec}", f"--hparams_set={settings.hparams_set}",
          f"--hparams={overrides}", f"--data_dir={settings.data_dir}",
          f"--output_dir={run.output_dir}", f"--train_steps={run.train_steps}",
          "--mixing=uniform", f"--seed={run.seed}", "--eval_every=0", "--final_eval_splits=test",
          f"--checkpoint_every={max(run.train_steps // 2, 1)}",
          "--keep_checkpoints=1"]


class RunFailedError(RuntimeError):
  """An mm-trainer run exited with an error; the message ends with its log's tail."""


def train(run: Run, settings: Settings) -> float:
  """Runs mm-trainer for `run` (its output in <output_dir>.log); returns the wall seconds."""
  os.makedirs(os.path.dirname(run.output_dir), exist_ok=True)
  log_path = f"{run.output_dir}.log"
  start = time.perf_counter()
  with open(log_path, "w") as log:
    code = subprocess.call(trainer_command(run, settings), stdout=log, stderr=subprocess.STDOUT)
  if code != 0 or not final_metrics(run):
    with open(log_path, errors="replace") as log:
      tail = "".join(log.readlines()[-15:])
    raise RunFailedError(f"mm-trainer failed for {run.label} (exit {code}); see {log_path}:\n{tail}")
  return time.perf_counter() - start


def execute(runs: Sequence[Run], settings: Settings) -> list[str]:
  """Trains every unfinished run (`settings.jobs` at a time); returns the failures' messages."""
  todo = [run for run in runs if not final_metrics(run)]
  print(f"reproduce: {len(runs)} runs, {len(runs) - len(todo)} already finished, "
        f"{len(todo)} to train ({sum(r.train_steps for r in todo)} steps).", flush=True)
  failures = []
  with concurrent.futures.ThreadPoolExecutor(max(settings.jobs, 1)) as pool:
    futures = {pool.submit(train, run, settings): run for run in todo}
    for done, future in enumerate(concurrent.futures.as_completed(futures), 1):
      run = futures[future]
      try:
        print(f"reproduce: [{done}/{len(todo)}] {run.label}: {run.train_steps} steps in "
              f"{future.result():.0f} s", flush=True)
      except RunFailedError as e:
        failures.append(str(e))
        print(f"reproduce: [{done}/{len(todo)}] {e}", file=sys.stderr, flush=True)
  return failures
