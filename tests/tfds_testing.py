"""Test helper: writes a tiny dataset in TFDS's prepared on-disk format (as `tfds build` leaves it).

Uses `tfds.folder_dataset.write_metadata`, TFDS's documented way to turn TFRecords
of serialised examples into a dataset that `tfds.builder_from_directory` reads.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

import tensorflow as tf


def write_prepared(data_dir: str, name: str, version: str, features,
                   splits: Mapping[str, Sequence[Mapping[str, Any]]], config: str | None = None) -> str:
  """Writes `<data_dir>/<name>[/<config>]/<version>/` with one shard per split; returns that folder."""
  import tensorflow_datasets as tfds

  builder_dir = os.path.join(data_dir, name, *([config] if config else []), version)
  os.makedirs(builder_dir, exist_ok=True)
  for split, examples in splits.items():
    shard = os.path.join(builder_dir, f"{name}-{split}.tfrecord-00000-of-00001")
    with tf.io.TFRecordWriter(shard) as writer:
      for example in examples:
        writer.write(features.serialize_example(example))
  tfds.folder_dataset.write_metadata(data_dir=builder_dir, features=features, split_infos=None,
                                     check_data=False)
  return builder_dir
