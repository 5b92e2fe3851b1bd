"""image_digits: 8x8 handwritten digits -> their class (the offline ImageNet twin).

Data: scikit-learn's `load_digits()` (the UCI optical recognition of
handwritten digits test set: 1,797 images of 10 classes, 8x8 pixels, ink
intensity 0..16), shipped inside scikit-learn; all 1,797 images are used.

Images: intensity v in 0..16 becomes round(v * 255 / 16) in 0..255 (ink is
bright, the background black, as in the data set), stored as an 8x8 grayscale
PNG; the image modality decodes it to [8, 8, 3] floats in [0, 1].

Splits: stratified by class with a fixed seed. The images of each class are
shuffled by `random.Random(SEED)`; the first round(10%) go to test, the next
round(10%) to dev, the rest to train (about 80/10/10). Each split lists its
images in the data set's order, so every call yields the same samples.
"""

from __future__ import annotations

import functools
import io
import random
from typing import Iterator

import numpy as np
from PIL import Image

from t2t_multimodel.problem import SPLITS, CommandToken, MissingDataError, Problem, Sample

SEED = 1797
HELD_OUT_FRACTION = 0.1  # of each class, for dev and again for test
MAX_INTENSITY = 16


def to_png(image: np.ndarray) -> bytes:
  """An [8, 8] digit of intensities 0..16 -> grayscale PNG bytes of 0..255."""
  pixels = np.rint(np.asarray(image, np.float64) * (255 / MAX_INTENSITY)).astype(np.uint8)  # [8, 8]
  buffer = io.BytesIO()
  Image.fromarray(pixels).save(buffer, format="PNG")  # uint8 [8, 8] -> mode "L"
  return buffer.getvalue()


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
  try:
    from sklearn.datasets import load_digits  # Imported here: scikit-learn is slow to import.
  except ImportError as error:
    raise MissingDataError("image_digits reads load_digits() of the `scikit-learn` package, which is "
                           "not installed: pip install 'scikit-learn>=1.5,<2'") from error
  data = load_digits()
  return data.images, data.target                                     # [1797, 8, 8], [1797]


@functools.lru_cache(maxsize=1)
def split_indices() -> dict[str, tuple[int, ...]]:
  """{"train"|"dev"|"test": indices into load_digits()}, stratified, disjoint, sorted."""
  _, labels = _digits()
  rng = random.Random(SEED)
  splits: dict[str, list[int]] = {split: [] for split in SPLITS}
  for label in range(10):
    members = [int(i) for i in np.flatnonzero(labels == label)]
    rng.shuffle(members)
    held_out = round(HELD_OUT_FRACTION * len(members))
    splits["test"] += members[:held_out]
    splits["dev"] += members[held_out:2 * held_out]
    splits["train"] += members[2 * held_out:]
  return {split: tuple(sorted(indices)) for split, indices in splits.items()}


class ImageDigits(Problem):
  """Classify scikit-learn's 8x8 handwritten digits into 0..9 (see module docstring).

  Example:
    >>> problem = ImageDigits()
    >>> sample = next(problem.generate_samples("test", ""))
    >>> sample["inputs"][:4], type(sample["targets"])                  # PNG bytes, a label
    (b'\\x89PNG', <class 'int'>)
  """

  name = "image_digits"
  input_modality = "image"
  target_modality = "class_label"
  command = CommandToken.TO_IMAGE_LABEL
  metrics = ("accuracy", "accuracy_top5")
  num_classes = 10
  class_names = tuple(str(digit) for digit in range(10))
  description = "scikit-learn's 1,797 8x8 handwritten digits -> 0..9"

  def check_data(self, tmp_dir: str) -> None:
    _digits()

  def indices(self, split: str) -> tuple[int, ...]:
    """The load_digits() indices of `split`, in generation order."""
    if split not in SPLITS:
      raise ValueError(f"Expected `split` in {SPLITS}. Received: split={split!r}")
    return split_indices()[split]

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    images, labels = _digits()
    for index in self.indices(split):
      yield {"inputs": to_png(images[index]), "targets": int(labels[index])}
