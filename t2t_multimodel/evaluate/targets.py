"""The quality targets of `make train` (issue #13) and how a run's final figures meet them.

Every target is on a whole test split, with the decoding mm-evaluate uses by default (beam 4,
alpha 0.6, since 2026-12-04; greedy before), for the one jointly trained model. reports/train.md
and benchmarks/learning.py both print them.
"""

from __future__ import annotations

import dataclasses
import operator
from typing import Mapping

BIBLE = ("translate_ende_bible", "translate_deen_bible", "translate_enfr_bible", "translate_fren_bible")
TEXT_PROBLEMS = (*BIBLE, "caption_emoji", "speech_espeak", "parse_trees")


@dataclasses.dataclass(frozen=True)
class Target:
  problem: str
  metric: str
  op: str          # ">=" or "<="
  goal: float

  def met(self, value: float) -> bool:
    return {">=": operator.ge, "<=": operator.le}[self.op](value, self.goal)

  @property
  def name(self) -> str:
    """e.g. "translate_ende_bible.bleu>=15"."""
    return f"{self.problem}.{self.metric}{self.op}{self.goal:g}"


TARGETS: tuple[Target, ...] = (
    Target("image_digits", "accuracy", ">=", 0.97),
    *(Target(name, "bleu", ">=", 15.0) for name in BIBLE),
    Target("speech_espeak", "wer", "<=", 0.25),
    Target("parse_trees", "bracket_f1", ">=", 80.0),
    *(Target(name, "degenerate", "<=", 0.02) for name in TEXT_PROBLEMS),
)


def check(final: Mapping[str, Mapping[str, float]]) -> list[tuple[Target, float | None, bool]]:
  """(target, the run's value or None if the run lacks it, met) for every target."""
  rows = []
  for target in TARGETS:
    value = final.get(target.problem, {}).get(target.metric)
    rows.append((target, value, value is not None and target.met(value)))
  return rows
