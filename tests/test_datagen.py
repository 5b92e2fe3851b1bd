"""mm-datagen's engine: shard names, vocab, idempotence and atomicity."""

import glob
import io
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from PIL import Image

from t2t_multimodel.data import data_dir as data_dir_lib, datagen, shards
from t2t_multimodel.problem import CommandToken, Problem
from t2t_multimodel.vocab import EOS_ID, load_vocab, vocab_path

SENTENCES = [f"sentence number {i} says hello to the world" for i in range(60)]


class ToyTranslate(Problem):
  name = "toy_translate"
  command = CommandToken.TO_GERMAN
  metrics = ("bleu",)
  train_shards = 2

  def __init__(self, fail_after=None):
    self.fail_after = fail_after

  def generate_samples(self, split, tmp_dir):
    lines = {"train": SENTENCES[:40], "dev": SENTENCES[40:50], "test": SENTENCES[50:]}[split]
    for i, line in enumerate(lines):
      if split == "dev" and i == self.fail_after:  # after train is written
        raise KeyboardInterrupt("killed")
      yield {"inputs": line, "targets": line.upper()}


def _png(value):
  buffer = io.BytesIO()
  Image.fromarray(np.full((4, 4), value, np.uint8)).save(buffer, format="PNG")
  return buffer.getvalue()


class ToyImages(Problem):
  name = "toy_images"
  input_modality, target_modality = "image", "class_label"
  command = CommandToken.TO_IMAGE_LABEL
  num_classes = 2
  metrics = ("accuracy",)

  def generate_samples(self, split, tmp_dir):
    for i in range(6):
      yield {"inputs": _png(200 * (i % 2)), "targets": i % 2}


def _shards(data_dir, name):
  return sorted(os.path.basename(p) for p in glob.glob(os.path.join(data_dir, f"{name}-*")))


def test_generate_writes_named_shards_vocab_and_manifest(tmp_path):
  data_dir = str(tmp_path)
  manifests = datagen.generate([ToyTranslate(), ToyImages()], data_dir, progress=False)
  assert manifests["toy_translate"]["counts"] == {"train": 40, "dev": 10, "test": 10}
  assert _shards(data_dir, "toy_translate") == [
      "toy_translate-dev-00000-of-00001", "toy_translate-test-00000-of-00001",
      "toy_translate-train-00000-of-00002", "toy_translate-train-00001-of-00002"]
  vocab = load_vocab(data_dir)
  assert manifests["toy_translate"]["vocab_sha256"] == vocab.sha256
  assert manifests["toy_images"]["vocab_sha256"] is None
  dev = list(shards.load_split(ToyTranslate(), "dev", data_dir).as_numpy_iterator())
  assert [vocab.decode(ex["inputs"]) for ex in dev] == SENTENCES[40:50]
  assert [vocab.decode(ex["targets"]) for ex in dev] == [s.upper() for s in SENTENCES[40:50]]
  train = list(shards.load_split(ToyTranslate(), "train", data_dir).as_numpy_iterator())
  assert sorted(vocab.decode(ex["inputs"]) for ex in train) == sorted(SENTENCES[:40])
  images = list(shards.load_split(ToyImages(), "test", data_dir).as_numpy_iterator())
  assert [int(ex["targets"][0]) for ex in images] == [0, 1, 0, 1, 0, 1]
  assert images[1]["inputs"].shape == (4, 4, 3) and images[1]["inputs"].max() == pytest.approx(200 / 255)


def test_manifests_and_vocab_record_their_generation_seconds(tmp_path):
  """benchmarks/datagen.py sums these; only their presence is checked, never a duration."""
  data_dir = str(tmp_path)
  manifests = datagen.generate([ToyTranslate(), ToyImages()], data_dir, progress=False)
  with open(vocab_path(data_dir) + ".json") as f:
    recorded = [json.load(f)["seconds"]] + [m["seconds"] for m in manifests.values()]
  assert all(isinstance(s, float) and s >= 0 for s in recorded)


def test_second_run_is_a_no_op(tmp_path):
  data_dir = str(tmp_path)
  datagen.generate([ToyTranslate()], data_dir, progress=False)
  before = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(data_dir, "*"))}
  datagen.generate([ToyTranslate()], data_dir, progress=False)
  after = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(data_dir, "*"))}
  assert before == after


def test_new_vocab_regenerates(tmp_path):
  data_dir = str(tmp_path)
  datagen.generate([ToyTranslate()], data_dir, progress=False)
  os.remove(os.path.join(data_dir, "vocab.mm8k.model"))
  os.remove(os.path.join(data_dir, "toy_translate-dev-00000-of-00001"))
  manifests = datagen.generate([ToyTranslate()], data_dir, progress=False)
  assert manifests["toy_translate"]["vocab_sha256"] == load_vocab(data_dir).sha256
  assert os.path.exists(os.path.join(data_dir, "toy_translate-dev-00000-of-00001"))


class ToyTrees(ToyTranslate):
  name = "toy_trees"
  vocab_symbols = ("(NP", ")NP")

  def generate_samples(self, split, tmp_dir):
    for sample in super().generate_samples(split, tmp_dir):
      yield {"inputs": sample["inputs"], "targets": "(NP XX XX )NP"}


class ToyTreesBefore(ToyTrees):
  """The same problem as an older mm-datagen knew it: no symbols kept whole."""
  vocab_symbols = ()


def test_a_vocabulary_without_the_symbols_is_rebuilt_and_the_shards_regenerated(tmp_path):
  data_dir = str(tmp_path)
  old = datagen.generate([ToyTreesBefore()], data_dir, progress=False)["toy_trees"]
  assert load_vocab(data_dir).missing_symbols(ToyTrees.vocab_symbols) == ["(NP", ")NP"]
  new = datagen.generate([ToyTrees()], data_dir, progress=False)["toy_trees"]
  vocab = load_vocab(data_dir)
  assert vocab.missing_symbols(ToyTrees.vocab_symbols) == [] and new["vocab_sha256"] == vocab.sha256
  assert new["vocab_sha256"] != old["vocab_sha256"]
  test = list(shards.load_split(ToyTrees(), "test", data_dir).as_numpy_iterator())
  first, *_, last, eos = test[0]["targets"]
  assert (vocab.encode("(NP"), vocab.encode(")NP"), eos) == ([first], [last], EOS_ID)
  with open(vocab_path(data_dir) + ".json") as f:
    assert json.load(f)["symbols"] == ["(NP", ")NP"]


def test_a_vocabulary_serving_other_problems_is_kept(tmp_path):
  data_dir = str(tmp_path)
  datagen.generate([ToyTranslate()], data_dir, progress=False)
  sha = load_vocab(data_dir).sha256
  datagen.generate([ToyTrees()], data_dir, progress=False)
  assert load_vocab(data_dir).sha256 == sha


def test_interrupted_problem_leaves_no_final_shard(tmp_path):
  data_dir = str(tmp_path)
  with pytest.raises(KeyboardInterrupt):
    datagen.generate([ToyTranslate(fail_after=5)], data_dir, progress=False)
  names = _shards(data_dir, "toy_translate")
  assert "toy_translate-train-00000-of-00002.incomplete" in names
  assert all(name.endswith(".incomplete") for name in names)
  assert not os.path.exists(data_dir_lib.manifest_path(data_dir, "toy_translate"))
  with pytest.raises(data_dir_lib.DataNotFoundError, match="run mm-datagen --problems=toy_translate"):
    shards.load_split(ToyTranslate(), "train", data_dir)
  datagen.generate([ToyTranslate()], data_dir, progress=False)
  assert not [n for n in _shards(data_dir, "toy_translate") if n.endswith(".incomplete")]


def test_sigkill_mid_write_leaves_no_final_shard(tmp_path):
  data_dir = str(tmp_path)
  script = textwrap.dedent(f"""
      import time
      from t2t_multimodel.data import datagen
      from t2t_multimodel.problem import CommandToken, Problem

      class Slow(Problem):
        name = "slow"
        input_modality, target_modality = "image", "class_label"
        num_classes, metrics = 2, ("accuracy",)

        def generate_samples(self, split, tmp_dir):
          from tests.test_datagen import _png
          for i in range(10_000):
            yield {{"inputs": _png(i % 255), "targets": i % 2}}
            if i == 50:
              print("writing", flush=True)
            time.sleep(0.01)

      datagen.generate([Slow()], {data_dir!r}, progress=False)
  """)
  proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                          cwd=os.path.dirname(os.path.dirname(__file__)))
  assert proc.stdout.readline().strip() == "writing"
  time.sleep(0.2)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  names = _shards(data_dir, "slow")
  assert names and all(name.endswith(".incomplete") for name in names)
  assert not os.path.exists(data_dir_lib.manifest_path(data_dir, "slow"))


class ToyEcho(Problem):
  """Its test targets are another problem's training text: two exactly, one inside a longer line."""

  name = "toy_echo"
  command = CommandToken.TO_ENGLISH
  metrics = ("bleu",)

  def generate_samples(self, split, tmp_dir):
    lines = {"train": ["an echo of nothing at all"] * 3,
             "dev": ["a fresh line nobody trained on"],
             "test": [SENTENCES[0], SENTENCES[1].upper(), "number 2 says hello to",
                      "not seen anywhere before"]}[split]
    for line in lines:
      yield {"inputs": "echo", "targets": line}


def test_manifests_record_targets_found_in_any_training_text(tmp_path):
  data_dir = str(tmp_path)
  manifests = datagen.generate([ToyTranslate(), ToyEcho(), ToyImages()], data_dir, progress=False)
  names = ["toy_echo", "toy_images", "toy_translate"]
  # SENTENCES[0] (a toy_translate input), SENTENCES[1].upper() (a target, normalised) and a run
  # of 5 whole words inside SENTENCES[2] leak; the last test line does not.
  assert manifests["toy_echo"]["leaked_targets"] == {"test": 3, "dev": 0, "checked_against": names}
  assert manifests["toy_translate"]["leaked_targets"] == {"test": 0, "dev": 0, "checked_against": names}
  assert "leaked_targets" not in manifests["toy_images"]   # class labels are not text
  on_disk = json.load(open(os.path.join(data_dir, "toy_echo.manifest.json")))
  assert on_disk["leaked_targets"]["test"] == 3
  stored = list(datagen.stored_texts(ToyTranslate(), "test", data_dir))
  assert stored == [{"inputs": line, "targets": line.upper()} for line in SENTENCES[50:]]
