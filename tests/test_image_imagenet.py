"""image_imagenet: the ILSVRC2012 tars (nested, streamed), label files, the TFDS path, missing data."""

import io
import os
import tarfile

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from t2t_multimodel.data import features
from t2t_multimodel.problem import CommandToken, MissingDataError, SPLITS
from t2t_multimodel.problems import image_imagenet
from t2t_multimodel.problems.image_imagenet import ImageImagenet
from tests import tfds_testing

TENCH, GOLDFISH, TOILET_TISSUE = "n01440764", "n01443537", "n15075141"   # labels 0, 1, 999
COLORS = {TENCH: (200, 30, 30), GOLDFISH: (30, 200, 30), TOILET_TISSUE: (30, 30, 200)}


def _jpeg(color, size=(40, 30), mode="RGB") -> bytes:
  buffer = io.BytesIO()
  image = Image.new("RGB", size, color)
  image.convert(mode).save(buffer, format="JPEG", quality=95)
  return buffer.getvalue()


def _tar(members) -> bytes:
  buffer = io.BytesIO()
  with tarfile.open(fileobj=buffer, mode="w") as archive:
    for name, data in members:
      info = tarfile.TarInfo(name)
      info.size = len(data)
      archive.addfile(info, io.BytesIO(data))
  return buffer.getvalue()


def _write(path, data):
  with open(path, "wb") as f:
    f.write(data)


@pytest.fixture
def raw_dir(tmp_path, monkeypatch):
  """<tmp>/imagenet2012 with a train tar of per-class tars and a val tar (members not in number order)."""
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
  root = tmp_path / "imagenet2012"
  root.mkdir()
  per_class = {
      TENCH: [("n01440764_1.JPEG", _jpeg(COLORS[TENCH])),
              ("n01440764_2.JPEG", _jpeg(COLORS[TENCH], (600, 400)))],
      GOLDFISH: [("n01443537_7.JPEG", _jpeg(COLORS[GOLDFISH], mode="L"))],
      TOILET_TISSUE: [("n15075141_3.JPEG", _jpeg(COLORS[TOILET_TISSUE], mode="CMYK"))],
  }
  _write(root / image_imagenet.TRAIN_TAR,
         _tar([(f"{synset}.tar", _tar(images)) for synset, images in per_class.items()]))
  val = {3: GOLDFISH, 1: TOILET_TISSUE, 2: TENCH}
  _write(root / image_imagenet.VAL_TAR,
         _tar([(f"ILSVRC2012_val_{n:08d}.JPEG", _jpeg(COLORS[s])) for n, s in val.items()]))
  (root / "validation_labels.txt").write_text("".join(f"{val[n]}\n" for n in sorted(val)))
  return tmp_path


def _decoded(png):
  return np.asarray(Image.open(io.BytesIO(png)))


def test_declaration():
  problem = ImageImagenet()
  assert problem.name == "image_imagenet" and problem.full_data
  assert (problem.input_modality, problem.target_modality) == ("image", "class_label")
  assert problem.command == CommandToken.TO_IMAGE_LABEL and problem.num_classes == 1000
  assert problem.metrics == ("accuracy", "accuracy_top5") and problem.train_shards == 1024
  names = problem.class_names
  assert len(names) == 1000 and list(names) == sorted(names)
  assert (names.index(TENCH), names.index(GOLDFISH), names.index(TOILET_TISSUE)) == (0, 1, 999)


def test_encode_png_shrinks_the_shorter_side_keeping_the_aspect():
  big = _decoded(image_imagenet.encode_png(_jpeg((10, 20, 30), (600, 400))))
  assert big.shape == (256, 384, 3)
  small = _decoded(image_imagenet.encode_png(_jpeg((10, 20, 30), (40, 30), mode="L")))
  assert small.shape == (30, 40, 3)  # never enlarged; grayscale becomes RGB


def test_raw_train_and_validation_splits(raw_dir):
  problem = ImageImagenet(dev_images=2)
  problem.check_data(str(raw_dir))
  splits = {split: list(problem.generate_samples(split, str(raw_dir))) for split in SPLITS}
  assert [s["targets"] for s in splits["train"]] == [0, 0, 1, 999]   # archive order, per-class tars
  assert [s["targets"] for s in splits["test"]] == [1, 999, 0]        # val tar order: images 3, 1, 2
  assert [s["targets"] for s in splits["dev"]] == [999, 0]            # images 1 and 2 only
  assert _decoded(splits["train"][1]["inputs"]).shape == (256, 384, 3)
  for sample in splits["train"] + splits["test"]:
    pixels = _decoded(sample["inputs"])
    expected = COLORS[problem.class_names[sample["targets"]]]
    assert pixels.shape[-1] == 3
    if sample["targets"] != 1:  # the goldfish JPEG is grayscale: its colour is gone
      np.testing.assert_allclose(pixels.reshape(-1, 3).mean(0), expected, atol=12)


def test_samples_encode_and_parse_back(raw_dir):
  problem = ImageImagenet(dev_images=2)
  parse = features.parse_fn(problem.input_modality, problem.target_modality)
  for sample in problem.generate_samples("dev", str(raw_dir)):
    serialized = features.encode_example(sample, problem.input_modality, problem.target_modality, None)
    decoded = parse(tf.constant(serialized))
    assert decoded["targets"].numpy().tolist() == [sample["targets"]]
    np.testing.assert_allclose(decoded["inputs"].numpy(), _decoded(sample["inputs"]) / 255.0, atol=1e-6)


def test_kaggle_label_file_and_shipped_fallback(raw_dir):
  root = raw_dir / "imagenet2012"
  os.remove(root / "validation_labels.txt")
  shipped = image_imagenet.validation_labels(str(root))   # TFDS's copy of the 50,000 labels
  assert len(shipped) == 50_000 and shipped[1] == "n01751748" and shipped[50_000] == "n02437616"
  (root / "LOC_val_solution.csv").write_text(
      "ImageId,PredictionString\n"
      f"ILSVRC2012_val_00000002,{GOLDFISH} 1 2 30 40\n"
      f"ILSVRC2012_val_00000001,{TENCH} 0 0 10 10 {TENCH} 5 5 9 9\n"
      f"ILSVRC2012_val_00000003,{TOILET_TISSUE} 3 3 8 8\n")
  assert image_imagenet.validation_labels(str(root)) == {1: TENCH, 2: GOLDFISH, 3: TOILET_TISSUE}
  samples = list(ImageImagenet().generate_samples("test", str(raw_dir)))
  assert [s["targets"] for s in samples] == [999, 0, 1]


def test_unknown_synset_is_named(raw_dir):
  root = raw_dir / "imagenet2012"
  _write(root / image_imagenet.TRAIN_TAR, _tar([("n99999999.tar", _tar([("x.JPEG", _jpeg((1, 2, 3)))]))]))
  with pytest.raises(ValueError, match="n99999999"):
    list(ImageImagenet().generate_samples("train", str(raw_dir)))


def test_prepared_tfds_dataset_is_preferred(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds

  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  spec = tfds.features.FeaturesDict({"image": tfds.features.Image(encoding_format="jpeg"),
                                     "label": tfds.features.ClassLabel(num_classes=1000),
                                     "file_name": tfds.features.Text()})
  def examples(labels):
    return [{"image": np.asarray(Image.open(io.BytesIO(_jpeg((9 * i, 50, 90), (300, 280))))),
             "label": label, "file_name": f"img{i}.JPEG"} for i, label in enumerate(labels)]
  tfds_testing.write_prepared(str(tmp_path / "tfds"), "imagenet2012", "5.1.0", spec,
                              {"train": examples([5, 7]), "validation": examples([3, 999, 0])})
  problem = ImageImagenet(dev_images=2)
  problem.check_data(str(tmp_path / "nothing_here"))
  samples = {split: list(problem.generate_samples(split, str(tmp_path))) for split in SPLITS}
  assert sorted(s["targets"] for s in samples["train"]) == [5, 7]
  assert sorted(s["targets"] for s in samples["test"]) == [0, 3, 999]
  assert len(samples["dev"]) == 2 and {s["targets"] for s in samples["dev"]} < {0, 3, 999}
  assert _decoded(samples["dev"][0]["inputs"]).shape == (256, 274, 3)


def test_missing_data_is_one_line_naming_the_data_set_and_the_place(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  (tmp_path / "imagenet2012").mkdir()
  _write(tmp_path / "imagenet2012" / image_imagenet.TRAIN_TAR, _tar([]))   # the val tar is still missing
  with pytest.raises(MissingDataError) as info:
    ImageImagenet().check_data(str(tmp_path))
  message = str(info.value)
  assert "\n" not in message and "ILSVRC2012" in message and "image_imagenet" in message
  assert str(tmp_path / "imagenet2012") in message and str(tmp_path / "tfds") in message
