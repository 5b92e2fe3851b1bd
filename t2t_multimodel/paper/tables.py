"""reports/paper_tables.md: our runs' Tables 2-4 beside the paper's, with seed spread and plots.

A cell is the mean over seeds of the final test metric with its range, "0.41 (0.39–0.43)". A
difference counts as an effect only when the two seed ranges do not overlap; each table ends
with one sentence per comparison, computed from the numbers, that says whether our effect
points the way the paper's did.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Sequence

from t2t_multimodel.data.mixing import ProblemSampler
from t2t_multimodel.evaluate.report import markdown_table
from t2t_multimodel.paper import numbers, plots
from t2t_multimodel.paper.reproduce import ABLATIONS, Config, final_metrics, Run, Settings
from t2t_multimodel.run import run_dir

PAPER_LOWER_IS_BETTER = frozenset({"log_perplexity"})
REPORT_FILE = "paper_tables.md"


@dataclasses.dataclass(frozen=True)
class Stat:
  """A metric over seeds: mean, min, max and how many seeds finished."""

  mean: float
  low: float
  high: float
  n: int

  @classmethod
  def of(cls, values: Sequence[float]) -> "Stat | None":
    return cls(sum(values) / len(values), min(values), max(values), len(values)) if values else None

  def __str__(self) -> str:
    if self.n == 1:
      return f"{self.mean:.3g}"
    return f"{self.mean:.3g} ({self.low:.3g}–{self.high:.3g})"


class Results:
  """Final test metrics of every finished run, by (config, problem, metric), over seeds."""

  def __init__(self, runs: Sequence[Run]):
    self._values: dict[tuple[Config, str, str], list[float]] = {}
    for run in runs:
      for problem, metrics in final_metrics(run).items():
        for metric, value in metrics.items():
          self._values.setdefault((run.config, problem, metric), []).append(float(value))

  def stat(self, config: Config, problem: str, metric: str) -> Stat | None:
    return Stat.of(self._values.get((config, problem, metric), []))

  def cell(self, config: Config, problem: str, metric: str) -> str:
    stat = self.stat(config, problem, metric)
    return str(stat) if stat else "—"


def effect(before: Stat | None, after: Stat | None, metric: str) -> str:
  """'better', 'worse' or 'within seed spread' (the ranges overlap); 'missing' without runs."""
  if before is None or after is None:
    return "missing"
  if before.n > 1 and after.n > 1 and before.low <= after.high and after.low <= before.high:
    return "within seed spread"
  if after.mean == before.mean:
    return "within seed spread"
  improved = after.mean < before.mean if metric in numbers.LOWER_IS_BETTER else after.mean > before.mean
  return "better" if improved else "worse"


def paper_effect(before: float, after: float, metric: str) -> str:
  if after == before:
    return "unchanged"
  improved = after < before if metric in PAPER_LOWER_IS_BETTER else after > before
  return "better" if improved else "worse"


def agreement(ours: str, theirs: str) -> str:
  if ours == "missing":
    return "no result of ours yet"
  if ours == "within seed spread":
    return "our difference is within the seed spread, so it points no way"
  if theirs == "unchanged":
    return f"ours is {ours}, the paper saw no change"
  return "same direction as the paper" if ours == theirs else "opposite to the paper"


def sentence(what: str, problem: str, metric: str, before: Stat | None, after: Stat | None,
             row: numbers.PaperRow | None, keys: tuple[str, str], paper_metric: str) -> str:
  """One computed comparison: ours before -> after, the paper's, and whether they agree."""
  ours = effect(before, after, metric)
  text = f"- {what}, {problem} {metric}: {before or '—'} → {after or '—'} ({ours})"
  if row is None:
    return text + "; the paper has no such row."
  old, new = row.values[keys[0]][paper_metric], row.values[keys[1]][paper_metric]
  theirs = paper_effect(old, new, paper_metric)
  return (text + f"; paper, {row.task} {paper_metric}: {old:g} → {new:g} ({theirs}): "
          f"{agreement(ours, theirs)}.")


def _paper(row: numbers.PaperRow | None, key: str, metric: str) -> str:
  return f"{row.values[key][metric]:g}" if row and key in row.values else "—"


def table2(results: Results, configs: dict[str, Config]) -> list[str]:
  joint = configs["joint"]
  problems = list(joint.problems)
  header = ["problem", "metric", "alone", f"joint ({joint.name})", "neg_log_ppl alone",
            "neg_log_ppl joint", "loss alone", "loss joint", "paper task",
            "paper acc. alone / joint", "paper log-ppl alone / joint"]
  rows, sentences = [], []
  for p in problems:
    single, metric, row = configs[f"single:{p}"], numbers.main_metric(p), numbers.TABLE2.get(p)
    rows.append([p, metric, results.cell(single, p, metric), results.cell(joint, p, metric),
                 results.cell(single, p, "neg_log_perplexity"),
                 results.cell(joint, p, "neg_log_perplexity"), results.cell(single, p, "loss"),
                 results.cell(joint, p, "loss"), row.task if row else "—",
                 f"{_paper(row, 'single', 'accuracy')} / {_paper(row, 'joint', 'accuracy')}",
                 f"{_paper(row, 'single', 'log_perplexity')} / {_paper(row, 'joint', 'log_perplexity')}"])
    compared = numbers.COMPARABLE_METRIC.get(p, metric) if row else metric
    sentences.append(sentence("Joint vs alone", p, compared, results.stat(single, p, compared),
                              results.stat(joint, p, compared), row, ("single", "joint"), "accuracy"))
  about = (f"Alone: one run per problem. Joint: one run of all {len(problems)} problems with "
           f"uniform mixing and {len(problems)} times the steps, so each problem sees about as "
           "many batches as alone.")
  return _section(numbers.TABLE2_CAPTION, about, header, rows, sentences)


def table3(results: Results, configs: dict[str, Config]) -> list[str]:
  labels = {"alone": "parse_trees alone", "with_image": "+ image_digits",
            "with_all": f"+ all ({configs['with_all'].name})"}
  row = numbers.TABLE3["parse_trees"]
  header = ["training", "bracket_f1", "exact_match", "loss", "paper accuracy",
            "paper full correct", "paper log-ppl"]
  rows = [[labels[key], *(results.cell(configs[key], "parse_trees", m)
                          for m in ("bracket_f1", "exact_match", "loss")),
           _paper(row, key, "accuracy"), _paper(row, key, "full_correct"),
           _paper(row, key, "log_perplexity")] for key in labels]
  sentences = []
  for key in ("with_image", "with_all"):
    for metric, paper_metric in (("bracket_f1", "accuracy"), ("exact_match", "full_correct")):
      sentences.append(sentence(f"{labels[key]} vs alone", "parse_trees", metric,
                                results.stat(configs["alone"], "parse_trees", metric),
                                results.stat(configs[key], "parse_trees", metric), row,
                                ("alone", key), paper_metric))
  about = ("parse_trees alone, jointly with image_digits, and jointly with all problems "
           "(the Table 2 runs), uniform mixing, the same batches per problem.")
  return _section(numbers.TABLE3_CAPTION, about, header, rows, sentences)


def table4(results: Results, configs: dict[str, Config]) -> list[str]:
  problems = sorted({key.split(":")[1] for key in configs}, key=list(numbers.TABLE4).index)
  header = ["problem", "blocks", "metric", "value", "neg_log_ppl", "loss", "paper task",
            "paper acc.", "paper log-ppl"]
  rows, sentences = [], []
  for p in problems:
    metric, row = numbers.COMPARABLE_METRIC.get(p, numbers.main_metric(p)), numbers.TABLE4.get(p)
    for ablation in ABLATIONS:
      config = configs[f"{ablation}:{p}"]
      rows.append([p, ablation, metric, results.cell(config, p, metric),
                   results.cell(config, p, "neg_log_perplexity"), results.cell(config, p, "loss"),
                   row.task if row else "—", _paper(row, ablation, "accuracy"),
                   _paper(row, ablation, "log_perplexity")])
    for ablation in ("no_moe", "no_attention"):
      sentences.append(sentence(f"{ablation} vs all blocks", p, metric,
                                results.stat(configs[f"all:{p}"], p, metric),
                                results.stat(configs[f"{ablation}:{p}"], p, metric), row,
                                ("all", ablation), "accuracy"))
  about = ("Each problem alone with all blocks (the Table 2 run), with use_moe=False and with "
           "use_attention=False. The attention blocks sit in the decoder, which a class-label "
           "problem does not use, so image_digits without attention is the same computation as "
           "with it: equal rows are expected there.")
  return _section(numbers.TABLE4_CAPTION, about, header, rows, sentences)


def _section(caption: str, about: str, header, rows, sentences) -> list[str]:
  return [f"## {caption}", "", about, "", *markdown_table(header, rows), "", "Does our effect point the "
          "paper's way? (An effect counts only when the seed ranges do not overlap.)", "",
          *sentences, ""]


def runs_section(settings: Settings, runs: Sequence[Run]) -> list[str]:
  """How the runs were made, and the batches of each problem that joint runs drew."""
  lines = ["## Runs", "",
           f"`mm-trainer --hparams_set={settings.hparams_set}"
           + (f" --hparams={settings.hparams}" if settings.hparams else "")
           + " --mixing=uniform`, seeds "
           f"{', '.join(map(str, settings.seeds))}: a run of k problems trains k × "
           f"{settings.steps_per_problem} steps, so every problem gets about "
           f"{settings.steps_per_problem} batches in every run. Metrics: the final evaluation on "
           f"each problem's whole test split (metrics.jsonl, eval_test.json). Runs in "
           f"`{settings.runs_dir}`.", "",
           *markdown_table(["run", "problems", "steps", "seed", "finished", "batches per problem drawn"],
                   [[r.config.name, str(len(r.config.problems)), str(r.train_steps), str(r.seed),
                     "yes" if final_metrics(r) else "no", _drawn(r)] for r in runs]), ""]
  return lines


def _drawn(run: Run) -> str:
  if len(run.config.problems) == 1:
    return str(run.train_steps)
  record_path = os.path.join(run.output_dir, run_dir.PROBLEMS_FILE)
  rates = (run_dir.read_json(record_path)["rates"] if os.path.exists(record_path)
           else {p: 1.0 for p in run.config.problems})
  counts = ProblemSampler(rates, run.seed).counts(run.train_steps)
  return ", ".join(f"{p} {counts[p]}" for p in run.config.problems)


def write_report(settings: Settings, tables: dict[int, dict[str, Config]],
                 runs: Sequence[Run]) -> str:
  """Writes <out_dir>/paper_tables.md and its PNG plots; returns the markdown's path."""
  os.makedirs(settings.out_dir, exist_ok=True)
  results = Results(runs)
  builders = {2: table2, 3: table3, 4: table4}
  lines = ["# The paper's questions in miniature", "",
           f"Embedded problems ({settings.data_dir}) beside the full-scale numbers of {numbers.SOURCE}."
           + (" **Smoke run: a handful of steps, the numbers mean nothing.**" if settings.smoke else ""),
           "", "Cells: mean over seeds of the final test metric (min–max over seeds).", ""]
  if not numbers.VERIFIED:
    lines += [f"*{numbers.SOURCE_NOTE}*", ""]
  for number, configs in sorted(tables.items()):
    lines += builders[number](results, configs)
    image = plots.plot_table(number, results, configs, settings.out_dir)
    lines += [f"![Table {number}]({os.path.basename(image)})", ""]
  missing = sorted(set((2, 3, 4)) - set(tables))
  if missing:
    lines += [f"Tables {', '.join(map(str, missing))}: not run (their problems were not selected).", ""]
  lines += runs_section(settings, runs)
  path = os.path.join(settings.out_dir, REPORT_FILE)
  with open(path, "w", encoding="utf-8") as f:
    f.write("\n".join(lines))
  return path
