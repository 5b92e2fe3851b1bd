"""tfds_source: finds prepared TFDS datasets on disk only, and reads them without downloading."""

import os

import pytest

from t2t_multimodel.data import tfds_source
from t2t_multimodel.problem import MissingDataError
from tests import tfds_testing


def test_data_dir_follows_the_environment(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  assert tfds_source.data_dir() == str(tmp_path)
  assert tfds_source.dataset_dir("wmt14_translate", "de-en") == str(tmp_path / "wmt14_translate" / "de-en")
  monkeypatch.delenv("TFDS_DATA_DIR")
  assert tfds_source.data_dir() == os.path.expanduser("~/tensorflow_datasets")


def test_prepared_dir_takes_the_newest_complete_version(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  assert tfds_source.prepared_dir("imagenet2012") is None
  folders = (("5.0.0", True), ("10.0.0", False), ("5.1.0", True), ("incomplete.AB12_6.0.0", True))
  for version, complete in folders:
    os.makedirs(tmp_path / "imagenet2012" / version)
    if complete:
      (tmp_path / "imagenet2012" / version / "dataset_info.json").write_text("{}")
  assert tfds_source.prepared_dir("imagenet2012") == str(tmp_path / "imagenet2012" / "5.1.0")
  assert tfds_source.prepared_dir("imagenet2012", "other_config") is None


def test_reads_a_prepared_dataset_and_names_a_missing_split(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds

  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path))
  spec = tfds.features.Translation(languages=["de", "en"])
  rows = [{"de": f"Satz {i}", "en": f"Sentence {i}"} for i in range(5)]
  tfds_testing.write_prepared(str(tmp_path), "wmt14_translate", "1.0.0", spec, {"train": rows},
                              config="de-en")
  builder_dir = tfds_source.prepared_dir("wmt14_translate", "de-en")
  assert tfds_source.split_names(builder_dir) == {"train"}
  missing = tfds_source.missing_splits(builder_dir, ["train[:2]", "validation", "test[50%:]"])
  assert missing == ["validation", "test"]
  read = list(tfds_source.read_split(builder_dir, "train"))
  assert sorted(r["en"].decode() for r in read) == [r["en"] for r in rows]
  assert read == list(tfds_source.read_split(builder_dir, "train"))   # a fixed order
  assert len(list(tfds_source.read_split(builder_dir, "train[:2]"))) == 2
  with pytest.raises(MissingDataError, match="has no 'validation' split; it has: train"):
    next(tfds_source.read_split(builder_dir, "validation"))
