"""image_digits: all 1,797 digits, stratified disjoint splits, PNGs that parse back to the pixels."""

import io
import itertools

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from sklearn.datasets import load_digits

from t2t_multimodel.data import features
from t2t_multimodel.problem import CommandToken, SPLITS, validate_problem
from t2t_multimodel.problems import image_digits
from t2t_multimodel.problems.image_digits import ImageDigits

PROBLEM = ImageDigits()
DIGITS = load_digits()


def test_declaration():
  assert validate_problem(PROBLEM) is PROBLEM
  assert PROBLEM.name == "image_digits"
  assert (PROBLEM.input_modality, PROBLEM.target_modality) == ("image", "class_label")
  assert PROBLEM.command == CommandToken.TO_IMAGE_LABEL
  assert PROBLEM.num_classes == 10 and PROBLEM.class_names == tuple("0123456789")
  assert PROBLEM.metrics == ("accuracy", "accuracy_top5")


def test_splits_use_every_image_once_and_are_stratified():
  splits = {split: PROBLEM.indices(split) for split in SPLITS}
  assert {split: len(indices) for split, indices in splits.items()} == {
      "train": 1439, "dev": 179, "test": 179}
  everything = list(itertools.chain.from_iterable(splits.values()))
  assert sorted(everything) == list(range(1797))  # all 1,797 images, none twice
  for split in ("dev", "test"):
    counts = np.bincount(DIGITS.target[list(splits[split])], minlength=10)
    assert counts.min() >= 17 and counts.max() <= 18, (split, counts)


def test_samples_are_grayscale_pngs_of_the_digits():
  samples = list(PROBLEM.generate_samples("test", ""))
  assert len(samples) == 179
  for index, sample in zip(PROBLEM.indices("test"), samples):
    with Image.open(io.BytesIO(sample["inputs"])) as image:
      assert (image.format, image.mode, image.size) == ("PNG", "L", (8, 8))
      pixels = np.asarray(image)                                          # [8, 8] uint8
    np.testing.assert_array_equal(pixels, np.rint(DIGITS.images[index] * 255 / 16))
    assert sample["targets"] == DIGITS.target[index] and isinstance(sample["targets"], int)
  assert pixels.max() == 255 and pixels.min() == 0


def test_samples_encode_and_parse_back():
  parse = features.parse_fn(PROBLEM.input_modality, PROBLEM.target_modality)
  for sample in itertools.islice(PROBLEM.generate_samples("dev", ""), 5):
    serialized = features.encode_example(sample, PROBLEM.input_modality, PROBLEM.target_modality, None)
    decoded = parse(tf.constant(serialized))
    image = decoded["inputs"].numpy()                                     # [8, 8, 3] in [0, 1]
    assert image.shape == (8, 8, 3) and image.dtype == np.float32
    expected = np.asarray(Image.open(io.BytesIO(sample["inputs"]))) / 255  # [8, 8]
    for channel in range(3):
      np.testing.assert_allclose(image[..., channel], expected, atol=1e-6)
    assert decoded["targets"].numpy().tolist() == [sample["targets"]]


def test_generation_is_deterministic():
  first = list(itertools.islice(PROBLEM.generate_samples("train", ""), 5))
  assert first == list(itertools.islice(PROBLEM.generate_samples("train", ""), 5))
  cached = image_digits.split_indices()
  image_digits.split_indices.cache_clear()
  assert image_digits.split_indices() == cached  # the seeded split, recomputed


def test_unknown_split_names_the_value():
  with pytest.raises(ValueError, match="split='validation'"):
    next(PROBLEM.generate_samples("validation", ""))
