"""image_mscoco_captions8k: COCO 2014 caption JSON + image folders, the TFDS path, missing data."""

import io
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from t2t_multimodel.data import features
from t2t_multimodel.problem import CommandToken, MissingDataError, SPLITS
from t2t_multimodel.problems.image_mscoco import ImageMscocoCaptions
from t2t_multimodel.vocab import SubwordVocab
from tests import tfds_testing

# image id -> (size, colour, [(annotation id, caption as COCO stores it)])
TRAIN = {
    9: ((640, 480), (220, 40, 40), [(667, "A plate of food with  broccoli.\n"),
                                    (48, "Closeup of bins of food. "),
                                    (126, "A meal is shown on a tray.")]),
    25: ((200, 300), (40, 220, 40), [(122, "A giraffe eating leaves."), (127, "A giraffe near a tree.")]),
    30: ((100, 100), (0, 0, 0), []),   # an image without captions is skipped
}
VAL = {
    42: ((300, 200), (40, 40, 220), [(641, "A dog on a shoe rack."), (639, "Shoes and a small dog.")]),
    73: ((100, 80), (220, 220, 40), [(593, "A motorcycle parked by a wall.")]),
    74: ((120, 90), (40, 220, 220), [(332, "A picture of a dog on a street."), (401, "A dog lies down.")]),
}


def _write_set(root, image_set, images):
  (root / image_set).mkdir(parents=True)
  entries, annotations = [], []
  for image_id, (size, color, captions) in images.items():
    file_name = f"COCO_{image_set}_{image_id:012d}.jpg"
    if captions:
      Image.new("RGB", size, color).save(root / image_set / file_name, format="JPEG", quality=95)
    entries.append({"license": 3, "file_name": file_name,
                    "coco_url": f"http://images.cocodataset.org/{image_set}/{file_name}",
                    "height": size[1], "width": size[0], "date_captured": "2013-11-14 16:28:13",
                    "id": image_id})
    annotations += [{"image_id": image_id, "id": ann_id, "caption": text} for ann_id, text in captions]
  data = {"info": {"description": "COCO 2014 Dataset", "year": 2014}, "licenses": [{"id": 3, "name": "CC"}],
          "images": entries[::-1], "annotations": annotations[::-1]}
  (root / "annotations").mkdir(exist_ok=True)
  (root / "annotations" / f"captions_{image_set}.json").write_text(json.dumps(data))


@pytest.fixture
def tmp_dir(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "no_tfds"))
  _write_set(tmp_path / "coco", "train2014", TRAIN)
  _write_set(tmp_path / "coco", "val2014", VAL)
  return str(tmp_path)


def _pixels(png):
  return np.asarray(Image.open(io.BytesIO(png)))


def _captions(images, image_id):
  return [" ".join(text.split()) for _, text in sorted(images[image_id][2])]


def test_declaration():
  problem = ImageMscocoCaptions()
  assert problem.name == "image_mscoco_captions8k" and problem.full_data
  assert (problem.input_modality, problem.target_modality, problem.command) == ("image", "symbol",
                                                                                 CommandToken.TO_CAPTION)
  assert problem.metrics == ("bleu", "accuracy", "neg_log_perplexity") and problem.train_shards >= 20


def test_raw_splits(tmp_dir):
  problem = ImageMscocoCaptions(dev_images=1, test_images=1)
  problem.check_data(tmp_dir)
  samples = {split: list(problem.generate_samples(split, tmp_dir)) for split in SPLITS}
  expected_train = ([(9, c) for c in _captions(TRAIN, 9)] + [(25, c) for c in _captions(TRAIN, 25)]
                    + [(74, c) for c in _captions(VAL, 74)])           # train2014, then the rest of val2014
  assert [s["targets"] for s in samples["train"]] == [c for _, c in expected_train]
  assert samples["train"][0]["targets"] == "Closeup of bins of food."   # annotation-id order, clean spaces
  assert [s["targets"] for s in samples["dev"]] == ["Shoes and a small dog."]
  assert [s["targets"] for s in samples["test"]] == ["A motorcycle parked by a wall."]
  everything = [(sample, image_id) for sample, (image_id, _) in zip(samples["train"], expected_train)]
  everything += [(samples["dev"][0], 42), (samples["test"][0], 73)]
  for sample, image_id in everything:
    size, color, _ = {**TRAIN, **VAL}[image_id]
    pixels = _pixels(sample["inputs"])
    scale = min(1.0, 256 / min(size))
    assert pixels.shape == (round(size[1] * scale), round(size[0] * scale), 3)
    np.testing.assert_allclose(pixels.reshape(-1, 3).mean(0), color, atol=6)


def test_vocab_texts_are_the_train_captions_without_images(tmp_dir):
  problem = ImageMscocoCaptions(dev_images=1, test_images=1)
  os.remove(os.path.join(tmp_dir, "coco", "train2014", "COCO_train2014_000000000009.jpg"))
  expected = _captions(TRAIN, 9) + _captions(TRAIN, 25) + _captions(VAL, 74)
  assert list(problem.vocab_texts(tmp_dir)) == expected
  with pytest.raises(MissingDataError, match="COCO_train2014_000000000009.jpg is missing"):
    list(problem.generate_samples("train", tmp_dir))


def test_samples_encode_and_parse_back(tmp_dir, tmp_path):
  problem = ImageMscocoCaptions(dev_images=2, test_images=1)
  vocab = SubwordVocab.build(problem.vocab_texts(tmp_dir), str(tmp_path / "v.model"), vocab_size=400)
  parse = features.parse_fn("image", "symbol")
  for split in ("train", "dev", "test"):
    for sample in problem.generate_samples(split, tmp_dir):
      decoded = parse(tf.constant(features.encode_example(sample, "image", "symbol", vocab)))
      assert vocab.decode(decoded["targets"].numpy()) == sample["targets"]
      np.testing.assert_allclose(decoded["inputs"].numpy(), _pixels(sample["inputs"]) / 255.0, atol=1e-6)


def test_prepared_tfds_dataset_is_preferred(tmp_path, monkeypatch):
  import tensorflow_datasets as tfds

  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  spec = tfds.features.FeaturesDict({
      "image": tfds.features.Image(encoding_format="jpeg"), "image/id": np.int64,
      "captions": tfds.features.Sequence({"text": tfds.features.Text(), "id": np.int64})})

  def example(image_id, color, texts):
    return {"image": np.full((300, 400, 3), color, np.uint8), "image/id": image_id,
            "captions": [{"text": t, "id": i} for i, t in enumerate(texts)]}
  tfds_testing.write_prepared(str(tmp_path / "tfds"), "coco_captions", "1.1.0", spec, {
      "train": [example(1, 10, ["A cat.", "A  sleeping cat. "])], "restval": [example(2, 90, ["A bus."])],
      "val": [example(3, 150, ["A kite.", "Kites in the sky."])], "test": [example(4, 250, ["A boat."])]},
      config="2014")
  problem = ImageMscocoCaptions()
  problem.check_data(str(tmp_path / "nothing_here"))
  samples = {split: list(problem.generate_samples(split, str(tmp_path))) for split in SPLITS}
  assert [s["targets"] for s in samples["train"]] == ["A cat.", "A sleeping cat.", "A bus."]
  assert [s["targets"] for s in samples["dev"]] == ["A kite."]
  assert [s["targets"] for s in samples["test"]] == ["A boat."]
  assert _pixels(samples["dev"][0]["inputs"]).shape == (256, 341, 3)
  assert list(problem.vocab_texts(str(tmp_path))) == ["A cat.", "A sleeping cat.", "A bus."]


def test_missing_data_is_one_line_naming_the_data_set_and_the_place(tmp_path, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
  _write_set(tmp_path / "coco", "train2014", TRAIN)   # no val2014
  with pytest.raises(MissingDataError) as info:
    ImageMscocoCaptions().check_data(str(tmp_path))
  message = str(info.value)
  assert "\n" not in message and "image_mscoco_captions8k" in message and "COCO" in message
  assert str(tmp_path / "coco") in message and str(tmp_path / "tfds") in message
