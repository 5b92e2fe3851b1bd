"""The full-scale numbers of "One Model To Learn Them All" (arXiv 1706.05137v1), Tables 2-4.

Each table maps one of our embedded problems to the paper's task it stands in for, and each
configuration of that row to the paper's numbers: log-perplexity (lower is better) and accuracy
in percent (per-token accuracy for the sequence tasks, top-1 for ImageNet). Table 3 adds the
percentage of fully correct parse trees. The paper ran its ablation (Table 4) and the
parsing-transfer study (Table 3) on the full data sets with multimodel_paper-sized models.

`VERIFIED` says whether these values were checked against the paper's text when they were
entered; the report prints `SOURCE_NOTE` under every paper column while it is False.
"""

from __future__ import annotations

import dataclasses

SOURCE = "Kaiser et al. 2017, One Model To Learn Them All, arXiv 1706.05137v1"
VERIFIED = False
SOURCE_NOTE = ("Paper values as recalled from arXiv 1706.05137v1; the paper's tables (images in "
               "every stored copy) could not be re-read when this file was written: check them "
               "against the PDF before citing.")


@dataclasses.dataclass(frozen=True)
class PaperRow:
  """One row of a paper table: the paper's task and {configuration: {metric: value}}."""

  task: str
  values: dict[str, dict[str, float]]


# Table 2: joint training on the 8 problems vs each problem alone.
TABLE2_CAPTION = "Table 2: MultiModel trained jointly on 8 problems vs on each problem alone"
TABLE2 = {
    "image_digits": PaperRow("ImageNet", {
        "single": {"log_perplexity": 1.6, "accuracy": 67.0},
        "joint": {"log_perplexity": 1.7, "accuracy": 66.0}}),
    "translate_ende_bible": PaperRow("WMT EN→DE", {
        "single": {"log_perplexity": 1.4, "accuracy": 71.0},
        "joint": {"log_perplexity": 1.4, "accuracy": 72.0}}),
    "speech_espeak": PaperRow("WSJ speech", {
        "single": {"log_perplexity": 5.7, "accuracy": 23.0},
        "joint": {"log_perplexity": 4.4, "accuracy": 41.0}}),
    "parse_trees": PaperRow("WSJ parsing", {
        "single": {"log_perplexity": 0.2, "accuracy": 97.0},
        "joint": {"log_perplexity": 0.15, "accuracy": 98.0}}),
}

# Table 3: parsing alone, with ImageNet, with all 8 problems.
TABLE3_CAPTION = "Table 3: parsing alone, with ImageNet, and with the 8 problems"
TABLE3 = {
    "parse_trees": PaperRow("WSJ parsing", {
        "alone": {"log_perplexity": 0.20, "accuracy": 97.1, "full_correct": 11.7},
        "with_image": {"log_perplexity": 0.16, "accuracy": 97.5, "full_correct": 12.7},
        "with_all": {"log_perplexity": 0.15, "accuracy": 97.7, "full_correct": 13.5}}),
}

# Table 4: all blocks vs without mixture-of-experts vs without attention.
TABLE4_CAPTION = "Table 4: ablating mixture-of-experts and attention"
TABLE4 = {
    "image_digits": PaperRow("ImageNet", {
        "all": {"log_perplexity": 1.6, "accuracy": 67.0},
        "no_moe": {"log_perplexity": 1.6, "accuracy": 66.0},
        "no_attention": {"log_perplexity": 1.6, "accuracy": 67.0}}),
    "translate_enfr_bible": PaperRow("WMT EN→FR", {
        "all": {"log_perplexity": 1.2, "accuracy": 76.0},
        "no_moe": {"log_perplexity": 1.3, "accuracy": 74.0},
        "no_attention": {"log_perplexity": 1.4, "accuracy": 72.0}}),
}

# Which of our metrics stands for the paper's accuracy column in the direction sentences.
COMPARABLE_METRIC = {
    "image_digits": "accuracy",
    "translate_ende_bible": "accuracy",
    "translate_enfr_bible": "accuracy",
    "speech_espeak": "wer",
    "parse_trees": "bracket_f1",
}


# Our metrics where a smaller value is better (every other one: larger is better).
LOWER_IS_BETTER = frozenset({"wer", "loss"})


def main_metric(problem: str) -> str:
  """The first metric the problem declares (accuracy, bleu, wer or bracket_f1)."""
  from t2t_multimodel.problems import get_problem
  return get_problem(problem).metrics[0]
