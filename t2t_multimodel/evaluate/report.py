"""The report of a training run: final metrics per problem, curves, decoded examples (Markdown + PNG).

Its CLI is mm-report (bin/report.py):
  mm-report --output_dir=runs/demo --report=reports/demo.md [--examples_dir=runs/demo/decoder] \
      [--timings=runs/demo/timings.tsv] [--json=reports/demo.json] [--notes=NOTES.md] [--targets] \
      [--compare=reports/train.json]

Everything comes from the run dir the trainer wrote (see run_dir.py): metrics.jsonl (dev curves,
final test metrics), train_log.jsonl (training loss per problem, steps/s), decodes.jsonl (greedy
decodes from the final evaluation), hparams.json and problems.json; where mm-evaluate wrote
eval_test.json, the final figures and decodes are its (eval_test_decodes.jsonl). Optional extras: pairs of
`<problem>.in` / `<problem>.out` files written by mm-decoder (one output line per input line),
a TSV of `stage<TAB>seconds` wall times, a Markdown file of notes appended as it is, and a JSON
file to write the final test figures to, `{problem: {metric: value}}` (mm-evaluate's names), and
another run's such file to show beside this run's figures (`make demo` shows `make train`'s).
The plots are written beside the report: `<report stem>_loss.png` and `<report stem>_metrics.png`.
"""

from __future__ import annotations

import glob
import os
from typing import Sequence

from t2t_multimodel.errors import UserError
from t2t_multimodel.evaluate import targets
from t2t_multimodel.run import run_dir

_NOT_METRICS = ("step", "problem", "split")
EXTRA_TEXT_METRICS = ("chrf", "degenerate")  # reported for every text output beside its own


def final_metrics(records: Sequence[dict], split: str = "test") -> tuple[int, dict[str, dict]]:
  """(step, problem -> metrics) of the last evaluation on `split` in metrics.jsonl records."""
  steps = [r["step"] for r in records if r["split"] == split]
  if not steps:
    raise UserError(f"No {split} evaluation in the run's {run_dir.METRICS_FILE}: has training finished?")
  step = max(steps)
  return step, {r["problem"]: {k: v for k, v in r.items() if k not in _NOT_METRICS}
                for r in records if r["split"] == split and r["step"] == step}


def read_test_evaluation(output_dir: str) -> dict | None:
  """The content of O/eval_test.json (mm-evaluate's whole-test-split figures), None if absent."""
  path = run_dir.eval_path(output_dir, "test")
  return run_dir.read_json(path) if os.path.exists(path) else None


def final_figures(evaluated: dict | None, records: Sequence[dict]) -> tuple[int, dict[str, dict]]:
  """(step, problem -> metrics and "examples") of the run's newest whole-test-split evaluation:
  `evaluated` (`read_test_evaluation`'s O/eval_test.json), else the final records of
  metrics.jsonl. A run stopped before its end is reported at its evaluated checkpoint."""
  if evaluated is not None:
    return evaluated["step"], {name: {**entry["metrics"], "examples": entry["examples"]}
                               for name, entry in evaluated["problems"].items()}
  return final_metrics(records)


def decoding_words(evaluated: dict | None) -> str:
  """How the run's final figures were decoded, from `evaluated` (`read_test_evaluation`'s
  O/eval_test.json): 'beam search (beam 4, alpha 0.6)' or 'greedy decoding', and, for an
  mm-avg-checkpoints checkpoint, which steps it averages. The trainer's own final evaluation (no
  eval_test.json) is greedy."""
  if evaluated is None:
    return "greedy decoding (the trainer's final evaluation)"
  decoding = evaluated["decoding"]
  words = ("greedy decoding" if decoding["beam_size"] == 1 else
           f"beam search (beam {decoding['beam_size']}, alpha {decoding['alpha']:g})")
  averaged = f"{evaluated.get('checkpoint') or ''}.json"
  if os.path.basename(os.path.dirname(averaged)) == run_dir.AVERAGED_DIR and os.path.exists(averaged):
    steps = run_dir.read_json(averaged)["steps"]
    words += f" of the average of the {len(steps)} checkpoints at steps {', '.join(f'{s:,}' for s in steps)}"
  return words


def steps_per_problem(train_log: Sequence[dict]) -> dict[str, int]:
  """Problem -> how many training steps drew it."""
  counts: dict[str, int] = {}
  for record in train_log:
    for name, n in record["steps"].items():
      counts[name] = counts.get(name, 0) + n
  return counts


def curves(records: Sequence[dict], key: str, split: str | None = None) -> dict[str, tuple[list, list]]:
  """Problem -> (steps, values) of `key`, from metrics records (of `split`) or train-log records."""
  series: dict[str, tuple[list, list]] = {}
  for record in records:
    if split is not None and record.get("split") != split:
      continue
    values = record[key] if isinstance(record.get(key), dict) else {record.get("problem"): record.get(key)}
    for name, value in values.items():
      if name is not None and value is not None:
        steps, ys = series.setdefault(name, ([], []))
        steps.append(record["step"])
        ys.append(value)
  return series


def panel_grid(panels: int, panel_size: tuple[float, float]):
  """(figure, axes [rows, columns]) with room for `panels` panels, at most 4 a row; the spare
  axes are hidden. matplotlib draws to files only (the Agg backend)."""
  import matplotlib
  matplotlib.use("Agg")
  from matplotlib import pyplot as plt

  columns = min(4, panels)
  rows = -(-panels // columns)
  figure, axes = plt.subplots(rows, columns, figsize=(panel_size[0] * columns, panel_size[1] * rows),
                              squeeze=False)
  for ax in axes.flat[panels:]:
    ax.axis("off")
  return figure, axes


def save_figure(figure, path: str) -> None:
  """Lays the figure out, writes it as PNG and frees it."""
  from matplotlib import pyplot as plt

  figure.tight_layout()
  figure.savefig(path, dpi=100)
  plt.close(figure)


def plot(series_by_panel: dict[str, dict[str, tuple[list, list]]], path: str, ylabel: str) -> None:
  """One panel per key of `series_by_panel` (one line per problem in each), saved as PNG."""
  panels = list(series_by_panel)
  figure, axes = panel_grid(len(panels), (4, 3))
  for ax, panel in zip(axes.flat, panels):
    for name, (steps, values) in sorted(series_by_panel[panel].items()):
      ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=name)
    ax.set_title(panel, fontsize=9)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel if len(panels) == 1 else panel.split(": ")[-1])
    if len(series_by_panel[panel]) > 1:
      ax.legend(fontsize=6)
  save_figure(figure, path)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
  """The lines of a Markdown table; "|" and line breaks inside cells are escaped."""
  return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
          ["| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in row) + " |"
           for row in rows])


def _first_decodes(decodes: Sequence[dict], per_problem: int = 3) -> list[dict]:
  """The first `per_problem` decodes of each problem (from an eval_<split>_decodes.jsonl)."""
  shown: dict[str, list[dict]] = {}
  for decode in decodes:
    kept = shown.setdefault(decode["problem"], [])
    if len(kept) < per_problem:
      kept.append(decode)
  return [decode for kept in shown.values() for decode in kept]


def _batch_rule(hparams) -> str:
  return (f"~{hparams.batch_tokens} tokens" if hparams.batch_tokens else
          f"{hparams.batch_size} examples")


def _format(value: float) -> str:
  return f"{value:.4g}"


def _decoder_examples(examples_dir: str | None) -> list[str]:
  lines: list[str] = []
  for source in sorted(glob.glob(os.path.join(examples_dir or "", "*.in"))):
    target = source[:-3] + ".out"
    if not os.path.exists(target):
      continue
    with open(source, encoding="utf-8") as f, open(target, encoding="utf-8") as g:
      pairs = list(zip(f.read().splitlines(), g.read().splitlines()))
    name = os.path.basename(source)[:-3]
    lines += ["", f"`mm-decoder --problem={name}` (one output line per piped input line):", ""]
    lines += markdown_table(["input", "output"], pairs)
  return lines


def _target_lines(final: dict[str, dict]) -> list[str]:
  checked = targets.check(final)
  rows = [[target.problem, f"{target.metric} {target.op} {target.goal:g}",
           "absent" if value is None else _format(value), "yes" if met else "**no**"]
          for target, value, met in checked]
  met = sum(met for _, _, met in checked)
  return ["", f"## Targets (issue #13): {met} of {len(rows)} met", ""] + markdown_table(
      ["problem", "target", "value", "met"], rows)


def _comparison_lines(final: dict[str, dict], trained: Sequence[str], compare_path: str,
                      words: str) -> list[str]:
  """This run's main figures (and looping share) beside those in another run's `--json` file,
  e.g. make train's reports/train.json; problems this run did not train say so."""
  from t2t_multimodel.problems import PROBLEMS

  other = run_dir.read_json(compare_path)

  def cell(figures: dict | None, name: str) -> str:
    names = [PROBLEMS.get(name).metrics[0], "degenerate"]
    return ", ".join(f"{m}={_format(figures[m])}" for m in names if m in figures) if figures else "not trained"

  rows = [[name, cell(final.get(name), name), cell(other.get(name), name)]
          for name in [*trained, *(name for name in other if name not in trained)]]
  return ["", f"## Beside `{compare_path}`", "",
          f"Main figures of this run, decoded by {words}, and of the run whose final figures are "
          f"`{compare_path}`, both on whole test splits:", ""] + markdown_table(
              ["problem", "this run", compare_path], rows)


def write_report(output_dir: str, report_path: str, examples_dir: str | None = None,
                 timings_path: str | None = None, json_path: str | None = None,
                 notes_path: str | None = None, with_targets: bool = False,
                 compare_path: str | None = None) -> str:
  """Writes the Markdown report of the run in `output_dir` and its two plots; returns the path.
  `with_targets` adds the table of `make train`'s quality targets (targets.py) and which are met;
  `compare_path` (another run's `json_path` file) a table of its figures beside this run's."""
  from t2t_multimodel.problems import PROBLEMS  # imports TensorFlow: after the CLI quietened it

  hparams, record = run_dir.load_run(output_dir)
  metrics = run_dir.read_jsonl(os.path.join(output_dir, run_dir.METRICS_FILE))
  train_log = run_dir.read_jsonl(os.path.join(output_dir, run_dir.TRAIN_LOG_FILE))
  decodes = run_dir.read_jsonl(os.path.join(output_dir, run_dir.DECODES_FILE))
  evaluated = read_test_evaluation(output_dir)
  step, final = final_figures(evaluated, metrics)
  drawn = steps_per_problem(train_log)
  declared = {p["name"]: list(PROBLEMS.get(p["name"]).metrics) for p in record["problems"]}
  stem = os.path.splitext(report_path)[0]
  os.makedirs(os.path.dirname(os.path.abspath(report_path)), exist_ok=True)
  plot({"training loss": curves(train_log, "loss")}, f"{stem}_loss.png", "training loss")
  plot({f"{name}: {names[0]}": {name: curves(metrics, names[0], split="dev").get(name, ([], []))}
        for name, names in declared.items()}, f"{stem}_metrics.png", "")

  speeds = sorted(r["steps_per_sec"] for r in train_log[1:]) or [float("nan")]
  lines = [f"# Training report: {record['spec']}", "",
           f"Run dir `{output_dir}`: {step} steps, mixing `{record['mixing']}`, seed {record['seed']}, "
           f"hidden_size {hparams.hidden_size}, {hparams.num_experts} experts (k={hparams.moe_k}), "
           f"batches of {_batch_rule(hparams)}, peak learning rate {hparams.learning_rate:.3g} at step "
           f"{hparams.learning_rate_warmup_steps}; median {speeds[len(speeds) // 2]:.2f} training steps/s.",
           "", f"## Final metrics (whole test splits, step {step})", ""]
  rows = [[name, drawn.get(name, 0), final.get(name, {}).get("examples", "?"),
           ", ".join(f"{m}={_format(final[name][m])}" for m in [*names, *EXTRA_TEXT_METRICS]
                     if m in final.get(name, {})),
           _format(final.get(name, {}).get("loss", float("nan")))]
          for name, names in declared.items()]
  words = decoding_words(evaluated)
  lines += ["Every figure is over the whole test split (the examples column), scored against the "
            f"untruncated references; decoding: {words}. The figures are the run dir's "
            "`eval_test.json` when mm-evaluate wrote one.", ""]
  lines += markdown_table(["problem", "steps drawn", "test examples", "metrics", "loss"], rows)
  if with_targets:
    lines += _target_lines(final)
  if compare_path:
    lines += _comparison_lines(final, list(declared), compare_path, words)
  if timings_path and os.path.exists(timings_path):
    with open(timings_path, encoding="utf-8") as f:
      stages = [line.split("\t") for line in f.read().splitlines() if "\t" in line]
    lines += ["", "## Wall time", ""] + markdown_table(["stage", "seconds"], stages)
  lines += ["", "## Curves", "", f"![training loss]({os.path.basename(stem)}_loss.png)", "",
            f"![dev metrics]({os.path.basename(stem)}_metrics.png)", "", "## Decoded examples", "",
            f"Decodes from the final evaluation (test split; {words}):", ""]
  shown = (_first_decodes(run_dir.read_jsonl(run_dir.decodes_path(output_dir, "test")))
           if evaluated is not None else
           [d for d in decodes if d["split"] == "test" and d["step"] == step])
  lines += markdown_table(["problem", "input", "reference", "hypothesis"],
                          [[d["problem"], d["input"], d["reference"], d["hypothesis"]] for d in shown])
  lines += _decoder_examples(examples_dir)
  if notes_path:
    with open(notes_path, encoding="utf-8") as f:
      lines += ["", f.read().rstrip()]
  if json_path:
    run_dir.write_json(json_path, {name: {k: v for k, v in values.items() if k != "examples"}
                                   for name, values in final.items()})
  with open(report_path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
  return report_path
