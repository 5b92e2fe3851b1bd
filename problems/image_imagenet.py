"""image_imagenet: ImageNet ILSVRC2012 classification (1000 classes), on data the user brings.

Sources, in this order:
1. The TFDS builder `imagenet2012`, if already prepared in the TFDS data dir
   ($TFDS_DATA_DIR, else ~/tensorflow_datasets; see `tfds_source.py`).
2. The raw archives in `<tmp_dir>/imagenet2012/` (TFDS's manual-dir layout):
   `ILSVRC2012_img_train.tar`, a tar of one tar per class named by its synset
   (`n01440764.tar`, ...) holding that class's JPEGs, and
   `ILSVRC2012_img_val.tar`, 50,000 JPEGs `ILSVRC2012_val_00000001.JPEG`, ...
   Both are streamed (the nested tars too): nothing is extracted to disk.

Labels: the index of the synset in the sorted list of the 1000 ILSVRC2012
synsets (TFDS's `imagenet2012` labels.txt, shipped with tensorflow_datasets), so
labels agree with TFDS's. Validation labels come from, in this order:
`LOC_val_solution.csv` (Kaggle: ImageId,PredictionString whose first token is
the synset) or `validation_labels.txt` (one synset per line, line i for image
number i) in `<tmp_dir>/imagenet2012/`, else TFDS's shipped copy of the same
50,000 labels. The devkit's `ILSVRC2012_validation_ground_truth.txt` (ids in
the devkit's own class order) is not read.

Splits: train = the train set; dev = the first `dev_images` (10,000)
validation images (raw: image numbers 1..10,000; TFDS: `validation[:10000]`);
test = the whole validation set (50,000 images, as the paper reports), so dev is
a part of test. ILSVRC2012's test set has no public labels and is not used.

Images: decoded (grayscale, CMYK and the one PNG among the JPEGs all become
RGB), shrunk so that the shorter side is `shorter_side` (256) pixels keeping
the aspect ratio (never enlarged; bilinear, with JPEG's cheap reduced-scale
decoding for large images), and stored as PNG (the image modality's codec) at
zlib level 1. Samples come in archive order.
"""

from __future__ import annotations

import csv
import functools
import importlib.util
import io
import os
import re
import tarfile
from typing import Iterator

from PIL import Image

from t2t_multimodel.data import tfds_source
from t2t_multimodel.problem import CommandToken, MissingDataError, Problem, Sample

SHORTER_SIDE = 256
PNG_COMPRESS_LEVEL = 1   # zlib level: ~6x faster than Pillow's default 6, for ~15% larger files
DEV_IMAGES = 10_000
TRAIN_TAR, VAL_TAR = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"
TFDS_NAME = "imagenet2012"
_VAL_NUMBER = re.compile(r"ILSVRC2012_val_(\d+)")


def encode_png(data: bytes, shorter_side: int = SHORTER_SIDE) -> bytes:
  """Encoded image (JPEG, PNG, ...) -> RGB PNG bytes whose shorter side is at most `shorter_side`."""
  with Image.open(io.BytesIO(data)) as image:
    image.draft("RGB", (shorter_side, shorter_side))  # JPEG: decode at a cheap reduced scale, >= the size
    image = image.convert("RGB")
  width, height = image.size
  scale = shorter_side / min(width, height)
  if scale < 1:
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
  buffer = io.BytesIO()
  image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
  return buffer.getvalue()


def _tfds_file(relative: str) -> str:
  spec = importlib.util.find_spec("tensorflow_datasets")  # Finds the package without importing it.
  if spec is None or not spec.submodule_search_locations:
    raise MissingDataError("image_imagenet needs tensorflow_datasets for the ILSVRC2012 label lists: "
                           "pip install 'tensorflow-datasets>=4.9,<5'")
  return os.path.join(spec.submodule_search_locations[0], "datasets", "imagenet2012", relative)


@functools.lru_cache(maxsize=1)
def synsets() -> tuple[str, ...]:
  """The 1000 ILSVRC2012 synsets, sorted; a label is an index into this tuple."""
  with open(_tfds_file("labels.txt")) as f:
    return tuple(line.strip() for line in f if line.strip())


def validation_labels(root: str) -> dict[int, str]:
  """Validation image number (1-based) -> synset, from the first label file found (module docstring)."""
  kaggle, plain = os.path.join(root, "LOC_val_solution.csv"), os.path.join(root, "validation_labels.txt")
  if os.path.exists(kaggle):
    with open(kaggle, newline="") as f:
      return {int(_VAL_NUMBER.search(row["ImageId"]).group(1)): row["PredictionString"].split()[0]
              for row in csv.DictReader(f)}
  with open(plain if os.path.exists(plain) else _tfds_file("validation_labels.txt")) as f:
    return {number: line.strip() for number, line in enumerate(f, start=1) if line.strip()}


@functools.lru_cache(maxsize=1)
def _synset_index() -> dict[str, int]:
  return {name: i for i, name in enumerate(synsets())}


def _label(synset: str, where: str) -> int:
  index = _synset_index().get(synset)
  if index is None:
    raise ValueError(f"Expected an ILSVRC2012 synset such as 'n01440764'. Received: {synset!r} ({where})")
  return index


def _train_images(path: str) -> Iterator[tuple[bytes, str, str]]:
  """(JPEG bytes, synset, name) of the train tar, streamed through its per-class tars."""
  with tarfile.open(path, mode="r|") as outer:
    for member in outer:
      if not (member.isfile() and member.name.endswith(".tar")):
        continue
      synset = os.path.basename(member.name)[:-len(".tar")]
      with tarfile.open(fileobj=outer.extractfile(member), mode="r|") as inner:
        for image in inner:
          if image.isfile():
            yield inner.extractfile(image).read(), synset, image.name


def _val_images(path: str, labels: dict[int, str],
                max_number: int | None) -> Iterator[tuple[bytes, str, str]]:
  """(JPEG bytes, synset, name) of the validation images numbered <= max_number (None: all), tar order."""
  with tarfile.open(path, mode="r|") as archive:
    for member in archive:
      match = _VAL_NUMBER.search(member.name)
      if not member.isfile() or match is None or (max_number and int(match.group(1)) > max_number):
        continue
      number = int(match.group(1))
      if number not in labels:
        raise MissingDataError(f"No validation label for {member.name} in the ImageNet label file.")
      yield archive.extractfile(member).read(), labels[number], member.name


class ImageImagenet(Problem):
  """ImageNet ILSVRC2012: image -> one of 1000 classes (see the module docstring for the data).

  Args:
    dev_images: how many validation images form the dev split.
    shorter_side: stored images are shrunk to this shorter side (pixels).

  Example:
    >>> problem = ImageImagenet()
    >>> problem.check_data("/data/tmp")          # MissingDataError says where to put ILSVRC2012
    >>> sample = next(problem.generate_samples("dev", "/data/tmp"))   # {"inputs": PNG, "targets": int}
  """

  name = "image_imagenet"
  input_modality = "image"
  target_modality = "class_label"
  command = CommandToken.TO_IMAGE_LABEL
  metrics = ("accuracy", "accuracy_top5")
  num_classes = 1000
  train_shards = 1024
  dev_shards = 10
  test_shards = 50
  full_data = True
  description = "ImageNet ILSVRC2012, 1000 classes (TFDS imagenet2012 or the ILSVRC2012 tars)"

  def __init__(self, dev_images: int = DEV_IMAGES, shorter_side: int = SHORTER_SIDE):
    if dev_images < 1 or shorter_side < 1:
      raise ValueError(f"Expected `dev_images` and `shorter_side` >= 1. "
                       f"Received: dev_images={dev_images}, shorter_side={shorter_side}")
    self.dev_images = dev_images
    self.shorter_side = shorter_side

  @property
  def class_names(self) -> tuple[str, ...]:
    """The synsets, label order (read on first use)."""
    return synsets()

  def _tfds_splits(self) -> dict[str, str]:
    return {"train": "train", "dev": f"validation[:{self.dev_images}]", "test": "validation"}

  def _source(self, tmp_dir: str) -> tuple[str, str]:
    """("tfds", builder dir) or ("raw", <tmp_dir>/imagenet2012); MissingDataError if neither is there."""
    builder_dir = tfds_source.prepared_dir(TFDS_NAME)
    if builder_dir and not tfds_source.missing_splits(builder_dir, ["train", "validation"]):
      return "tfds", builder_dir
    root = os.path.join(tmp_dir, "imagenet2012")
    if all(os.path.isfile(os.path.join(root, name)) for name in (TRAIN_TAR, VAL_TAR)):
      return "raw", root
    raise MissingDataError(
        f"image_imagenet needs ImageNet ILSVRC2012: put {TRAIN_TAR} and {VAL_TAR} in {root}/ "
        f"(or prepare the TFDS builder {TFDS_NAME} in {tfds_source.data_dir()})")

  def check_data(self, tmp_dir: str) -> None:
    self._source(tmp_dir)

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    kind, where = self._source(tmp_dir)
    if kind == "tfds":
      for example in tfds_source.read_split(where, self._tfds_splits()[split], raw_features=["image"]):
        yield {"inputs": encode_png(example["image"], self.shorter_side), "targets": int(example["label"])}
      return
    if split == "train":
      images = _train_images(os.path.join(where, TRAIN_TAR))
    else:
      max_number = self.dev_images if split == "dev" else None
      images = _val_images(os.path.join(where, VAL_TAR), validation_labels(where), max_number)
    for data, synset, image_name in images:
      yield {"inputs": encode_png(data, self.shorter_side), "targets": _label(synset, image_name)}
