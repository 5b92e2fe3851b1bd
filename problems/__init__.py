"""Every problem and mixture, registered explicitly by name (DESIGN.md section 4).

No registration by import side effects: each module defines classes, and this
file adds one instance of each to the registry.
"""

from __future__ import annotations

from t2t_multimodel.problem import Mixture, Problem, validate_problem
from t2t_multimodel.problems import (caption_emoji, image_digits, image_imagenet, image_mscoco,
                                     parse_trees, parse_wsj, speech_espeak, speech_wsj, translate_bible,
                                     translate_wmt)
from t2t_multimodel.registry import Registry, UnknownNameError

PROBLEMS: Registry[Problem] = Registry("problem")
MIXTURES: Registry[Mixture] = Registry("mixture")

for _problem in (
    # Embedded problems: real data shipped inside PyPI packages, offline.
    image_digits.ImageDigits(),
    translate_bible.TranslateBible("en", "de"),
    translate_bible.TranslateBible("de", "en"),
    translate_bible.TranslateBible("en", "fr"),
    translate_bible.TranslateBible("fr", "en"),
    caption_emoji.CaptionEmoji(),
    speech_espeak.SpeechEspeak(),
    parse_trees.ParseTrees(),
    # Full-data problems: the paper's data sets, brought by the user.
    image_imagenet.ImageImagenet(),
    translate_wmt.TranslateWmt("en", "de"),
    translate_wmt.TranslateWmt("de", "en"),
    translate_wmt.TranslateWmt("en", "fr"),
    translate_wmt.TranslateWmt("fr", "en"),
    image_mscoco.ImageMscocoCaptions(),
    speech_wsj.SpeechWsj(),
    parse_wsj.ParseWsj(),
):
  PROBLEMS.add(_problem.name, validate_problem(_problem))

MIXTURES.add("mm8_mini", Mixture(
    "mm8_mini",
    ("image_digits", "translate_ende_bible", "translate_deen_bible", "translate_enfr_bible",
     "translate_fren_bible", "caption_emoji", "speech_espeak", "parse_trees"),
    "the 8 embedded problems (offline twins of the paper's tasks)"))
MIXTURES.add("mm8_paper", Mixture(
    "mm8_paper",
    ("image_imagenet", "translate_ende_wmt8k", "translate_deen_wmt8k", "translate_enfr_wmt8k",
     "translate_fren_wmt8k", "image_mscoco_captions8k", "speech_wsj", "parse_wsj8k"),
    "the paper's 8 tasks on their full data sets"))


def get_problem(name: str) -> Problem:
  return PROBLEMS.get(name)


def resolve(spec: str) -> list[Problem]:
  """'a,b' or a mixture name -> problems, in order, without duplicates.

  Raises UnknownNameError naming the unknown entry and listing problems and mixtures.
  """
  names: list[str] = []
  for item in (part.strip() for part in spec.split(",")):
    if not item:
      continue
    if item in MIXTURES:
      names.extend(MIXTURES.get(item).problem_names)
    elif item in PROBLEMS:
      names.append(item)
    else:
      raise UnknownNameError(
          PROBLEMS.unknown_message(item) + f". Known mixtures: {', '.join(MIXTURES.names())}")
  if not names:
    raise UnknownNameError(f"No problems given. Known problems: {', '.join(PROBLEMS.names())}")
  return [PROBLEMS.get(n) for n in dict.fromkeys(names)]


__all__ = ["MIXTURES", "PROBLEMS", "get_problem", "resolve"]
