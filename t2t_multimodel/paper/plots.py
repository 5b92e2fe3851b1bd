"""Bar charts of the reproduced Tables 2-4: one panel per problem and metric, seed ranges as
error bars (see paper_tables.py)."""

from __future__ import annotations

import os

from t2t_multimodel.evaluate.report import panel_grid, save_figure
from t2t_multimodel.paper import numbers


def _panels(number: int, configs: dict, main_metric) -> list[tuple[str, str, list[tuple[str, object]]]]:
  """[(problem, metric, [(bar label, Config), ...]), ...] of one table."""
  if number == 2:
    joint = configs["joint"]
    return [(p, main_metric(p), [("alone", configs[f"single:{p}"]), ("joint", joint)])
            for p in joint.problems]
  if number == 3:
    bars = [("alone", configs["alone"]), ("+digits", configs["with_image"]),
            ("+all", configs["with_all"])]
    return [("parse_trees", metric, bars) for metric in ("bracket_f1", "exact_match")]
  problems = sorted({key.split(":")[1] for key in configs}, key=list(numbers.TABLE4).index)
  return [(p, numbers.COMPARABLE_METRIC.get(p, main_metric(p)),
           [(ablation, configs[f"{ablation}:{p}"]) for ablation in ("all", "no_moe", "no_attention")])
          for p in problems]


def plot_table(number: int, results, configs: dict, out_dir: str) -> str:
  """Draws Table `number` to <out_dir>/paper_table<number>.png; returns its path."""
  panels = _panels(number, configs, numbers.main_metric)
  figure, axes = panel_grid(len(panels), (3.2, 2.8))
  for ax, (problem, metric, bars) in zip(axes.flat, panels):
    stats = [results.stat(config, problem, metric) for _, config in bars]
    means = [s.mean if s else 0.0 for s in stats]
    errors = [[s.mean - s.low if s else 0.0 for s in stats], [s.high - s.mean if s else 0.0 for s in stats]]
    ax.bar([label for label, _ in bars], means, yerr=errors, capsize=4,
           color=["#4c72b0", "#dd8452", "#55a868"][:len(bars)])
    lower = " (lower is better)" if metric in numbers.LOWER_IS_BETTER else ""
    ax.set_title(f"{problem}\n{metric}{lower}", fontsize=9)
    ax.tick_params(labelsize=8)
  figure.suptitle(f"Table {number} (mean over seeds, bars: min–max)", fontsize=10)
  path = os.path.join(out_dir, f"paper_table{number}.png")
  save_figure(figure, path)
  return path
