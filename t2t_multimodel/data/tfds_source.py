"""Reads TFDS datasets that the user has already prepared; never downloads or prepares anything.

The full-data problems (image_imagenet, translate_*_wmt8k, image_mscoco_captions8k)
first look for their TFDS builder in the TFDS data dir (`$TFDS_DATA_DIR`, else
`~/tensorflow_datasets`), laid out as TFDS writes it:
`<data_dir>/<name>[/<config>]/<version>/dataset_info.json`. A version folder
without `dataset_info.json` (e.g. TFDS's `*.incomplete*` folders of an
interrupted preparation) does not count. The newest prepared version wins.

Finding a dataset only looks at the file system; `tensorflow_datasets` is
imported only to read one, through `tfds.builder_from_directory`, which needs
neither the builder's code nor the network.

Example:
  >>> builder_dir = tfds_source.prepared_dir("wmt14_translate", "de-en")
  >>> if builder_dir:
  ...   first = next(tfds_source.read_split(builder_dir, "validation"))   # {"de": b"...", "en": b"..."}
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Iterator, Sequence

from t2t_multimodel.problem import MissingDataError

DEFAULT_DATA_DIR = "~/tensorflow_datasets"
_VERSION = re.compile(r"^\d+\.\d+\.\d+$")
_SPLIT_NAME = re.compile(r"^\s*([\w-]+)")   # "validation[:10%]" -> "validation"


def data_dir() -> str:
  """The TFDS data dir: $TFDS_DATA_DIR, else ~/tensorflow_datasets (read at every call)."""
  return os.path.expanduser(os.environ.get("TFDS_DATA_DIR") or DEFAULT_DATA_DIR)


def dataset_dir(name: str, config: str | None = None) -> str:
  """Where TFDS keeps `name[/config]` in the data dir (for messages)."""
  return os.path.join(data_dir(), name, *([config] if config else []))


def _version_key(version: str) -> tuple[int, ...]:
  return tuple(int(part) for part in version.split("."))


def prepared_dir(name: str, config: str | None = None) -> str | None:
  """The newest fully prepared version folder of `name[/config]`, or None."""
  root = dataset_dir(name, config)
  if not os.path.isdir(root):
    return None
  versions = [v for v in os.listdir(root)
              if _VERSION.match(v) and os.path.isfile(os.path.join(root, v, "dataset_info.json"))]
  if not versions:
    return None
  return os.path.join(root, max(versions, key=_version_key))


def split_names(builder_dir: str) -> set[str]:
  """The splits a prepared dataset holds, from its dataset_info.json."""
  with open(os.path.join(builder_dir, "dataset_info.json")) as f:
    info = json.load(f)
  return {split["name"] for split in info.get("splits", [])}


def missing_splits(builder_dir: str, splits: Sequence[str]) -> list[str]:
  """The base names of `splits` (e.g. "validation" of "validation[:10000]") not in the dataset."""
  held = split_names(builder_dir)
  return [name for name in (_SPLIT_NAME.match(s).group(1) for s in splits) if name not in held]


def read_split(builder_dir: str, split: str, raw_features: Sequence[str] = ()) -> Iterator[dict[str, Any]]:
  """Yields the examples of `split` as NumPy values, in the stored (deterministic) order.

  Args:
    builder_dir: a folder returned by `prepared_dir`.
    split: a TFDS split, slicing allowed: "train", "validation[:10000]".
    raw_features: top-level features left undecoded (e.g. "image": the stored JPEG bytes).

  Raises:
    MissingDataError: if the prepared dataset lacks the split.
  """
  absent = missing_splits(builder_dir, [split])
  if absent:
    raise MissingDataError(
        f"The TFDS dataset in {builder_dir} has no {absent[0]!r} split; it has: "
        f"{', '.join(sorted(split_names(builder_dir)))}")
  import tensorflow_datasets as tfds  # Slow to import; only needed when a prepared dataset is read.

  builder = tfds.builder_from_directory(builder_dir)
  decoders = {name: tfds.decode.SkipDecoding() for name in raw_features}
  dataset = builder.as_dataset(split=split, shuffle_files=False, decoders=decoders or None)
  yield from tfds.as_numpy(dataset)
