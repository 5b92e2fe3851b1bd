"""image_mscoco_captions8k: MS-COCO 2014 image captioning, on data the user brings.

Sources, in this order:
1. The TFDS builder `coco_captions/2014`, if already prepared in the TFDS data
   dir (see `tfds_source.py`): Karpathy and Li's splits, train = train +
   restval (~113k images), dev = val (5,000), test = test (5,000).
2. The COCO 2014 files in `<tmp_dir>/coco/`: `annotations/captions_train2014.json`
   and `annotations/captions_val2014.json` (COCO's format: `images[]` with
   `id` and `file_name`, `annotations[]` with `image_id` and `caption`) and the
   image folders `train2014/` and `val2014/`. Images are taken in id order and
   their captions in annotation-id order; images without a caption are skipped.
   Like Karpathy's split: dev = the first `dev_images` (5,000) val2014 images,
   test = the next `test_images` (5,000), train = all of train2014 and then the
   rest of val2014.

Samples: train has one sample per (image, caption) pair (~5 per image, as in
T2T); dev and test have one per image, with its first caption (BLEU against the
other references is left to the metrics). Captions keep their case and
punctuation; their whitespace is collapsed to single spaces. Images are shrunk
to a 256-pixel shorter side and stored as PNG (`image_imagenet.encode_png`).
"""

from __future__ import annotations

import itertools
import json
import os
from typing import Iterator, NamedTuple

from t2t_multimodel.data import tfds_source
from t2t_multimodel.problem import CommandToken, MissingDataError, Problem, Sample
from t2t_multimodel.problems.image_imagenet import encode_png, SHORTER_SIDE

TFDS_NAME, TFDS_CONFIG = "coco_captions", "2014"
TFDS_SPLITS = {"train": ("train", "restval"), "dev": ("val",), "test": ("test",)}
DEV_IMAGES = TEST_IMAGES = 5_000
RAW_SETS = ("train2014", "val2014")


class CocoImage(NamedTuple):
  """One COCO image: its file and its captions, in annotation-id order."""

  path: str
  captions: tuple[str, ...]


def clean_caption(text: str) -> str:
  return " ".join(text.split())


def load_images(root: str, image_set: str) -> list[CocoImage]:
  """The captioned images of `image_set` ("train2014" or "val2014"), in image-id order."""
  with open(os.path.join(root, "annotations", f"captions_{image_set}.json"), encoding="utf-8") as f:
    data = json.load(f)
  captions: dict[int, list[tuple[int, str]]] = {}
  for annotation in data["annotations"]:
    text = clean_caption(annotation["caption"])
    if text:
      captions.setdefault(annotation["image_id"], []).append((annotation["id"], text))
  return [CocoImage(os.path.join(root, image_set, image["file_name"]),
                    tuple(text for _, text in sorted(captions[image["id"]])))
          for image in sorted(data["images"], key=lambda image: image["id"]) if image["id"] in captions]


def _read_image(path: str) -> bytes:
  if not os.path.isfile(path):
    raise MissingDataError(f"image_mscoco_captions8k: the COCO image {path} is missing")
  with open(path, "rb") as f:
    return f.read()


class ImageMscocoCaptions(Problem):
  """MS-COCO 2014 captioning: image -> English caption (see the module docstring for the data).

  Args:
    dev_images, test_images: how many val2014 images form dev and test (raw files only).
    shorter_side: stored images are shrunk to this shorter side (pixels).

  Example:
    >>> problem = ImageMscocoCaptions()
    >>> problem.check_data("/data/tmp")          # MissingDataError says where to put COCO 2014
    >>> next(problem.generate_samples("dev", "/data/tmp"))["targets"]   # 'A man riding a wave ...'
  """

  name = "image_mscoco_captions8k"
  input_modality = "image"
  target_modality = "symbol"
  command = CommandToken.TO_CAPTION
  metrics = ("bleu", "accuracy", "neg_log_perplexity")
  train_shards = 100
  dev_shards = 5
  test_shards = 5
  full_data = True
  description = "MS-COCO 2014 captions, Karpathy-style splits (TFDS coco_captions or the COCO files)"

  def __init__(self, dev_images: int = DEV_IMAGES, test_images: int = TEST_IMAGES,
               shorter_side: int = SHORTER_SIDE):
    if min(dev_images, test_images, shorter_side) < 1:
      raise ValueError(f"Expected `dev_images`, `test_images` and `shorter_side` >= 1. Received: "
                       f"dev_images={dev_images}, test_images={test_images}, shorter_side={shorter_side}")
    self.dev_images, self.test_images, self.shorter_side = dev_images, test_images, shorter_side

  def _source(self, tmp_dir: str) -> tuple[str, str]:
    """("tfds", builder dir) or ("raw", <tmp_dir>/coco); MissingDataError if neither is there."""
    builder_dir = tfds_source.prepared_dir(TFDS_NAME, TFDS_CONFIG)
    if builder_dir and not tfds_source.missing_splits(builder_dir, ["train", "restval", "val", "test"]):
      return "tfds", builder_dir
    root = os.path.join(tmp_dir, "coco")
    needed = [os.path.join("annotations", f"captions_{s}.json") for s in RAW_SETS] + list(RAW_SETS)
    if all(os.path.exists(os.path.join(root, path)) for path in needed):
      return "raw", root
    raise MissingDataError(
        f"image_mscoco_captions8k needs MS-COCO 2014 captions: put annotations/captions_train2014.json, "
        f"annotations/captions_val2014.json and the train2014/ and val2014/ image folders in {root}/ "
        f"(or prepare the TFDS builder {TFDS_NAME}/{TFDS_CONFIG} in {tfds_source.data_dir()})")

  def check_data(self, tmp_dir: str) -> None:
    self._source(tmp_dir)

  def _raw_split(self, root: str, split: str) -> list[CocoImage]:
    val = load_images(root, "val2014")
    dev_end = self.dev_images
    test_end = dev_end + self.test_images
    if split == "train":
      return load_images(root, "train2014") + val[test_end:]
    return val[:dev_end] if split == "dev" else val[dev_end:test_end]

  def _images(self, split: str, tmp_dir: str) -> Iterator[tuple[str | bytes, tuple[str, ...]]]:
    """(image, captions) of `split`: a raw image's path (read lazily), or TFDS's encoded bytes."""
    kind, where = self._source(tmp_dir)
    if kind == "tfds":
      for tfds_split in TFDS_SPLITS[split]:
        for example in tfds_source.read_split(where, tfds_split, raw_features=["image"]):
          captions = tuple(clean_caption(t.decode("utf-8")) for t in example["captions"]["text"])
          yield example["image"], tuple(c for c in captions if c)
    else:
      for image in self._raw_split(where, split):
        yield image.path, image.captions

  def generate_samples(self, split: str, tmp_dir: str) -> Iterator[Sample]:
    for image, captions in self._images(split, tmp_dir):
      if not captions:
        continue
      data = _read_image(image) if isinstance(image, str) else image
      png = encode_png(data, self.shorter_side)
      for caption in captions if split == "train" else captions[:1]:
        yield {"inputs": png, "targets": caption}

  def vocab_texts(self, tmp_dir: str) -> Iterator[str]:
    """The train captions, without decoding an image."""
    yield from itertools.chain.from_iterable(captions for _, captions in self._images("train", tmp_dir))
