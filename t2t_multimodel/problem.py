"""What a problem is: its modalities, its command token, its splits, its data and its metrics.

A problem yields raw samples, `{"inputs": ..., "targets": ...}`, whose types are
set by its modalities (see `modalities/`): text for "symbol", PNG bytes for
"image", a [frames, mel_bins] float array for "audio", an int for
"class_label". mm-datagen encodes them into TFRecord shards named
`<problem>-<split>-NNNNN-of-NNNNN` in the data dir.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import Any, Iterator, Mapping

from t2t_multimodel import modalities
from t2t_multimodel.errors import MissingDataError

__all__ = ["CommandToken", "Mixture", "MissingDataError", "NUM_COMMAND_TOKENS", "Problem", "Sample",
           "SPLITS", "validate_problem"]
SPLITS = ("train", "dev", "test")


class CommandToken(enum.IntEnum):
  """The target space: what the shared decoder is asked to produce (0 is padding)."""

  TO_ENGLISH = 1
  TO_GERMAN = 2
  TO_FRENCH = 3
  TO_PARSE_TREE = 4
  TO_IMAGE_LABEL = 5
  TO_CAPTION = 6
  TO_TRANSCRIPT = 7

  @property
  def display_name(self) -> str:
    """'To-English', 'To-Parse-Tree', ..."""
    return "-".join(part.capitalize() for part in self.name.split("_"))


NUM_COMMAND_TOKENS = max(CommandToken) + 1


Sample = Mapping[str, Any]


class Problem:
  """Base class of every problem. Subclasses set the class attributes and `generate_samples`.

  Attributes:
    name: the registry name, e.g. "translate_ende_bible".
    input_modality, target_modality: names from MODALITIES.
    command: the CommandToken put at the first target position.
    metrics: eval metric names, e.g. ("bleu", "accuracy", "neg_log_perplexity").
    train_shards, dev_shards, test_shards: TFRecord shards per split.
    num_classes: the number of labels for a "class_label" target.
    class_names: optional label names, for the decoder.
    full_data: True if the data must be brought by the user (see `data_help`).
    description: one line for --registry_help.
    vocab_symbols: tokens of the problem's text that the shared vocabulary keeps whole, one piece
      each (e.g. a linearised tree's "(NP" and ")NP"), wherever they stand after a space.
  """

  name: str = ""
  input_modality: str = "symbol"
  target_modality: str = "symbol"
  command: CommandToken = CommandToken.TO_ENGLISH
  metrics: tuple[str, ...] = ()
  train_shards: int = 1
  dev_shards: int = 1
  test_shards: int = 1
  num_classes: int = 0
  class_names: tuple[str, ...] = ()
  full_data: bool = False
  description: str = ""
  vocab_symbols: tuple[str, ...] = ()

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    """Yields the raw samples of `split` ("train", "dev" or "test") in a fixed order."""
    raise NotImplementedError(f"{type(self).__name__} must implement generate_samples")

  def vocab_texts(self, tmp_dir: str) -> Iterator[str]:
    """Yields the train-split text that the shared subword vocabulary is built from."""
    roles = self.text_roles()
    for sample in self.generate_samples("train", tmp_dir):
      for role in roles:
        yield sample[role]

  def text_samples(self, split: str, tmp_dir: str = "") -> Iterator[dict[str, str | None]]:
    """Yields `{"inputs": ..., "targets": ...}` per sample of `split`, in `generate_samples` order:
    the text of each text role, None for the other roles (used by leakage.py).

    Problems whose other roles are costly to make (audio, images) override it to skip that work.
    """
    roles = self.text_roles()
    for sample in self.generate_samples(split, tmp_dir):
      yield {role: sample[role] if role in roles else None for role in modalities.ROLES}

  def check_data(self, tmp_dir: str) -> None:
    """Raises MissingDataError (one line: the data set and where to put it) if data is absent."""

  def text_roles(self) -> list[str]:
    """The roles ("inputs", "targets") whose modality is text of the shared vocabulary."""
    return [role for role in modalities.ROLES if modalities.of(self, role).text]

  @property
  def has_text(self) -> bool:
    return bool(self.text_roles())

  def num_shards(self, split: str) -> int:
    return {"train": self.train_shards, "dev": self.dev_shards, "test": self.test_shards}[split]

  def signature(self) -> dict:
    """What the model needs to know of the problem (JSON-serialisable, for get_config)."""
    return {"name": self.name, "input_modality": self.input_modality,
            "target_modality": self.target_modality, "command": int(self.command),
            "num_classes": self.num_classes}

  def summary(self) -> str:
    """One line for --registry_help."""
    return (f"{self.name:28s} {self.input_modality:>6s} -> {self.target_modality:<11s} "
            f"{self.command.display_name:15s} {self.description}")

  def __repr__(self) -> str:
    return f"<Problem {self.name}>"


def validate_problem(problem: Problem) -> Problem:
  """Raises ValueError if a problem's declaration is inconsistent."""
  if not problem.name:
    raise ValueError(f"{type(problem).__name__} has no name.")
  for role, attribute in modalities.ROLES.items():
    name = getattr(problem, attribute)
    if name not in modalities.MODALITIES:
      raise ValueError(f"Problem {problem.name}: unknown {attribute} {name!r}; known: "
                       f"{', '.join(modalities.MODALITIES.names())}")
    modalities.MODALITIES.get(name).check(problem, role)
  if not problem.metrics:
    raise ValueError(f"Problem {problem.name}: declares no metrics.")
  return problem


@dataclasses.dataclass(frozen=True)
class Mixture:
  """A named list of problems trained jointly; rates come from the trainer's --mixing rule."""

  name: str
  problem_names: tuple[str, ...]
  description: str = ""
