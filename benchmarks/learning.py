"""Learning figures: the joint MultiModel against its targets, its specialists and a keras-hub peer.

  python benchmarks/learning.py [--joint_run=runs/train] [--output_dir=runs/learning]
      [--specialists=image_digits,translate_ende_bible] [--peer] [--peer_eval_examples=N]
      [--hparams_set=S --hparams='k=v,..' (the joint run's, as mm-trainer got them)]

1. The joint run (`make train`): its whole-test-split figures (O/eval_test.json, written by
   mm-evaluate) against the targets of targets.py, as `joint.<problem>.<metric>=` and
   `target.<problem>.<metric><op><goal>=1|0`.
2. Specialists (the paper's Table 2 at this scale): each named problem trained alone by the real
   trainer with the joint run's hparams for as many batches of its own as the joint run drew for
   it (the joint run's sampler replayed up to its evaluated step), then scored by mm-evaluate's
   code on the whole test split with the joint figures' decoding (eval_test.json's).
   `joint_over_specialist.<problem>.<metric>=` is joint / specialist (above 1 is the joint model
   ahead, except for wer, degenerate and loss, where lower is better).
3. The peer (`--peer`, needs translate_ende_bible among the specialists): a plain keras-hub
   Transformer with the same trainable parameter count, trained on the same batches for as long
   as the specialist trained, tracing included on both sides, greedy-decoded and scored the same
   way (benchmarks/peer_transformer.py), against the specialist's greedy figures. "As long" is
   counted in this process's CPU seconds (time.process_time), not wall seconds: on a machine whose cores other jobs share, the two
   would otherwise get different amounts of compute for the same wall time; on a quiet machine
   the two clocks agree up to the cores' idle share. `multimodel_over_peer.bleu=` is the specialist
   MultiModel's BLEU over the peer's.

Runs go under --output_dir and resume: a specialist that finished is only read back. Every figure
is printed as `name=value` and written to <output_dir>/learning.json.
"""

from __future__ import annotations

import argparse
import collections
import os
import sys
import time

from common import machine_note, print_figure
from t2t_multimodel.data.mixing import ProblemSampler
from t2t_multimodel.errors import UserError
from t2t_multimodel.evaluate import evaluator, targets
from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.run import run_dir
from t2t_multimodel.run.run_config import resolve_config
from t2t_multimodel.train import training


def joint_figures(joint_run: str) -> tuple[int, dict[str, dict]]:
  """(evaluated step, problem -> metrics) of the joint run's whole test splits."""
  content = evaluator.read_results(joint_run, "test")
  return content["step"], {name: entry["metrics"] for name, entry in content["problems"].items()}


def batches_drawn(joint_run: str, step: int) -> dict[str, int]:
  """Problem -> how many of the joint run's first `step` batches were its own (the sampler is a
  pure function of the run's rates and seed, so this replays the run exactly)."""
  _, record = run_dir.load_run(joint_run)
  return dict(collections.Counter(ProblemSampler(record["rates"], record["seed"]).problems(0, step)))


def train_specialist(problem: str, steps: int, joint_run: str, hparams_set: str, output_dir: str,
                     hparams: str = "", greedy_too: bool = False) -> dict:
  """Trains `problem` alone for `steps` batches (resuming), scores its whole test split with the
  decoding the joint run's figures were taken with (and, with `greedy_too`, greedy as well, as
  the peer decodes); returns {"steps", "train_seconds", "train_cpu_seconds", "decoding",
  "metrics"[, "greedy_metrics"]} (kept in <run>/specialist.json).
  A run resumed from a checkpoint times only its last part; one that had finished training
  before its summary was written gets the wall time its train_log implies and no CPU seconds."""
  run = os.path.join(output_dir, f"specialist_{problem}")
  summary_path = os.path.join(run, "specialist.json")
  decoding = evaluator.read_results(joint_run, "test")["decoding"]
  if os.path.exists(summary_path):
    summary = run_dir.read_json(summary_path)
    if (summary["steps"] == steps and summary.get("decoding") == decoding
        and (not greedy_too or "greedy_metrics" in summary)):
      return summary
  joint_hp, record = run_dir.load_run(joint_run)
  config = resolve_config(problems=problem, hparams_set=hparams_set, hparams=hparams,
                          data_dir=record["data_dir"], output_dir=run, train_steps=steps,
                          eval_every=0, final_eval_splits=(), checkpoint_every=500)
  if config.hparams != joint_hp:
    raise UserError(f"--hparams_set={hparams_set} --hparams={hparams!r} are not the hparams of "
                    f"{joint_run}: pass the joint run's set and overrides.")
  log = run_dir.read_jsonl(os.path.join(run, run_dir.TRAIN_LOG_FILE)) if os.path.exists(run) else []
  start, cpu_start = time.perf_counter(), time.process_time()
  training.train(config)
  train_seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
  if log and log[-1]["step"] >= steps:  # trained by an earlier call that stopped before its summary
    train_seconds, cpu_seconds = logged_seconds(log), None
  summary = {"steps": steps, "train_seconds": train_seconds, "train_cpu_seconds": cpu_seconds,
             "decoding": decoding}
  greedy_again = greedy_too and decoding["beam_size"] != 1  # else the scores below are greedy
  if greedy_again:  # first, so that the run's eval_test.json ends with the joint decoding's
    summary["greedy_metrics"] = evaluator.evaluate_run(run, "test", beam_size=1)["problems"][problem]["metrics"]
  content = evaluator.evaluate_run(run, "test", beam_size=decoding["beam_size"], alpha=decoding["alpha"],
                                   max_length=decoding["max_length"])
  summary["metrics"] = content["problems"][problem]["metrics"]
  if greedy_too and not greedy_again:
    summary["greedy_metrics"] = summary["metrics"]
  run_dir.write_json(summary_path, summary)
  return summary


def train_peer(args, cpu_seconds: float) -> dict:
  """The peer's figures for a budget of `cpu_seconds` (kept in <output_dir>/peer.json)."""
  path = os.path.join(args.output_dir, "peer.json")
  if os.path.exists(path):
    peer = run_dir.read_json(path)
    if peer["budget_cpu_seconds"] == cpu_seconds and peer["eval_examples"] == args.peer_eval_examples:
      return peer
  import peer_transformer  # keras-hub: only imported when the peer is trained
  _, record = run_dir.load_run(args.joint_run)
  peer = peer_transformer.train_and_evaluate(
      record["data_dir"], get_hparams(args.hparams_set, args.hparams), cpu_seconds,
      include_warmup=True, clock=time.process_time,
      max_eval_examples=args.peer_eval_examples or None)
  peer.update(budget_cpu_seconds=cpu_seconds, eval_examples=args.peer_eval_examples)
  run_dir.write_json(path, peer)
  return peer


def logged_seconds(log: list[dict]) -> float:
  """The training wall time a run's train_log.jsonl implies (its windows' steps / steps_per_sec)."""
  seconds, previous = 0.0, 0
  for record in log:
    seconds += (record["step"] - previous) / record["steps_per_sec"]
    previous = record["step"]
  return seconds


def ratio(joint: float, specialist: float) -> float:
  return joint / specialist if specialist else float("nan")


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--joint_run", default="runs/train")
  parser.add_argument("--joint_steps", type=int, default=0,
                      help="The joint run's length (default: its evaluated step); lets the "
                           "specialists train while the joint run still does.")
  parser.add_argument("--hparams_set", default="multimodel_small", help="The joint run's set.")
  parser.add_argument("--hparams", default="", help="The joint run's overrides ('k=v,...').")
  parser.add_argument("--output_dir", default="runs/learning")
  parser.add_argument("--specialists", default="image_digits,translate_ende_bible")
  parser.add_argument("--peer", action="store_true", help="Train the keras-hub peer too.")
  parser.add_argument("--peer_eval_examples", type=int, default=0, help="0: the whole test split.")
  args = parser.parse_args()
  print(machine_note())
  try:
    figures = measure(args)
  except UserError as error:
    sys.exit(f"benchmarks/learning.py: error: {error}")
  os.makedirs(args.output_dir, exist_ok=True)
  run_dir.write_json(os.path.join(args.output_dir, "learning.json"), figures)


def measure(args) -> dict[str, float]:
  figures: dict[str, float] = {}

  def figure(name: str, value: float | None) -> None:
    if value is not None:
      figures[name] = value
      print_figure(name, value)

  steps = args.joint_steps or joint_figures(args.joint_run)[0]
  drawn = batches_drawn(args.joint_run, steps)
  specialists = {}
  for problem in filter(None, args.specialists.split(",")):
    specialists[problem] = summary = train_specialist(
        problem, drawn[problem], args.joint_run, args.hparams_set, args.output_dir, args.hparams,
        greedy_too=args.peer and problem == "translate_ende_bible")
    figure(f"specialist.{problem}.steps", summary["steps"])
    figure(f"specialist.{problem}.train_seconds", summary["train_seconds"])
    figure(f"specialist.{problem}.train_cpu_seconds", summary["train_cpu_seconds"])
    for metric, value in summary["metrics"].items():
      figure(f"specialist.{problem}.{metric}", value)

  if args.peer:
    if "translate_ende_bible" not in specialists:
      raise UserError("--peer compares with the translate_ende_bible specialist: add it to --specialists.")
    mine = specialists["translate_ende_bible"]
    if mine["train_cpu_seconds"] is None:
      raise UserError(f"The translate_ende_bible specialist in {args.output_dir} has no CPU seconds "
                      f"on record (it finished in an earlier call): delete it and rerun.")
    peer = train_peer(args, mine["train_cpu_seconds"])
    for key in ("params", "target_params", "steps", "seconds", "target_tokens_per_second", "bleu",
                "chrf", "degenerate", "examples"):
      figure(f"peer.{key}", peer[key])
    greedy = mine.get("greedy_metrics", mine["metrics"])  # the peer decodes greedily
    figure("specialist.translate_ende_bible.greedy_bleu", greedy["bleu"])
    figure("multimodel_over_peer.bleu", ratio(greedy["bleu"], peer["bleu"]))
    figure("peer_over_multimodel.params", ratio(peer["params"], peer["target_params"]))

  step, joint = joint_figures(args.joint_run)
  print(f"joint run {args.joint_run}: whole test splits at step {step}")
  if step != steps:
    print(f"warning: the specialists match {steps} joint steps, the joint run was evaluated at {step}")
  for target, value, met in targets.check(joint):
    if value is not None:
      figure(f"joint.{target.problem}.{target.metric}", value)
    figure(f"target.{target.name}", float(met))
  for problem, summary in specialists.items():
    for metric, value in summary["metrics"].items():
      if metric in joint.get(problem, {}):
        figure(f"joint_over_specialist.{problem}.{metric}", ratio(joint[problem][metric], value))
  return figures


if __name__ == "__main__":
  main()
