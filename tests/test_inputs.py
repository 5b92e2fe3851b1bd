"""The trainer's input pipeline on tiny data sets written by datagen.write_problem."""

import dataclasses
import io
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from t2t_multimodel.data import data_dir as data_dir_lib, datagen, inputs, shards
from t2t_multimodel.hparams.multimodel import multimodel_tiny
from t2t_multimodel.modalities.audio import AudioModality
from t2t_multimodel.modalities.image import ImageModality
from t2t_multimodel.problem import CommandToken, Problem
from t2t_multimodel.vocab import EOS_ID, load_vocab

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
HP = dataclasses.replace(multimodel_tiny(), batch_size=4, max_input_length=12, max_target_length=10,
                         length_bucket_step=4, image_size=6, audio_time_strides=1, eval_batch_size=4)


def _sentence(i: int) -> str:
  return " ".join(WORDS[(i + j) % len(WORDS)] for j in range(1 + i % 9))


class ToySymbols(Problem):
  name = "toy_symbols"
  command = CommandToken.TO_GERMAN
  metrics = ("bleu",)
  train_shards = 3
  dev_shards = 2

  def generate_samples(self, split, tmp_dir):
    for i in range({"train": 30, "dev": 9, "test": 5}[split]):
      yield {"inputs": _sentence(i), "targets": _sentence(i + 1)}


def _png(i: int) -> bytes:
  buffer = io.BytesIO()
  pixels = np.random.default_rng(i).integers(0, 256, (5 + i % 4, 7, 3), dtype=np.uint8)
  Image.fromarray(pixels).save(buffer, format="PNG")
  return buffer.getvalue()


class ToyImages(Problem):
  name = "toy_images"
  input_modality, target_modality = "image", "class_label"
  command = CommandToken.TO_IMAGE_LABEL
  num_classes = 3
  metrics = ("accuracy",)
  train_shards = 2

  def generate_samples(self, split, tmp_dir):
    for i in range({"train": 10, "dev": 6, "test": 3}[split]):
      yield {"inputs": _png(i), "targets": i % 3}


class ToySpeech(Problem):
  name = "toy_speech"
  input_modality = "audio"
  command = CommandToken.TO_TRANSCRIPT
  metrics = ("wer",)

  def generate_samples(self, split, tmp_dir):
    for i in range({"train": 12, "dev": 5, "test": 3}[split]):
      frames = np.random.default_rng(i).normal(size=(3 + 2 * i, 80)).astype(np.float32)
      yield {"inputs": frames, "targets": _sentence(i)}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("data"))
  problems = [ToySymbols(), ToyImages(), ToySpeech()]
  vocab = datagen.ensure_vocab(problems, path, path, vocab_size=300)
  for problem in problems:
    datagen.write_problem(problem, path, path, vocab, progress=False)
  return path


def _batches(problem, data_dir, split="train", training=True, seed=0, n=None, hp=HP):
  ds = inputs.problem_dataset(problem, split, data_dir, hp, training=training, seed=seed)
  return list(ds.take(n).as_numpy_iterator() if n else ds.as_numpy_iterator())


def _assert_same_batches(first, second):
  assert len(first) == len(second)
  for a, b in zip(first, second):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_symbol_batches_are_padded_to_the_bucket_multiple(data_dir):
  for batch in _batches(ToySymbols(), data_dir, n=12):
    for key, limit in (("inputs", HP.max_input_length), ("targets", HP.max_target_length)):
      ids = batch[key]
      assert ids.dtype == np.int32 and ids.shape[0] == HP.batch_size
      assert ids.shape[1] % HP.length_bucket_step == 0
      lengths = (ids != 0).sum(1)
      assert lengths.max() > ids.shape[1] - HP.length_bucket_step  # the bucket's own length
      assert lengths.max() <= limit
      # Every row: tokens, then EOS, then zeros only; a target cut at its limit has no EOS.
      for row, n in zip(ids, lengths):
        assert not row[n:].any()
        assert row[n - 1] == EOS_ID or (key == "targets" and n == limit and EOS_ID not in row)


def test_cut_inputs_keep_their_eos_and_cut_targets_get_none(data_dir):
  vocab = load_vocab(data_dir)
  hp = dataclasses.replace(HP, max_input_length=3, max_target_length=2)
  full = {tuple(vocab.encode(_sentence(i))) for i in range(31)}
  cut_targets = 0
  for batch in _batches(ToySymbols(), data_dir, n=8, hp=hp):
    assert batch["inputs"].shape[1] == 4 and batch["targets"].shape[1] == 4
    for row in batch["inputs"]:
      ids = row[row != 0]
      assert len(ids) <= 3 and ids[-1] == EOS_ID
      assert any(ids[:-1].tolist() == list(f[:len(ids) - 1]) for f in full)
    for row in batch["targets"]:
      ids = row[row != 0].tolist()
      whole = [f for f in full if list(f[:len(ids)]) == ids[:len(f)]]
      if EOS_ID in ids:  # the whole target fits: it ends in EOS
        assert ids[-1] == EOS_ID and any(len(f) == len(ids) - 1 for f in whole)
      else:              # cut: the first 2 ids of a longer target, no EOS to teach stopping there
        assert len(ids) == 2 and any(len(f) > 2 for f in whole)
        cut_targets += 1
  assert cut_targets > 0


def test_eval_is_one_pass_in_generation_order_over_the_shards(data_dir):
  vocab = load_vocab(data_dir)
  batches = _batches(ToySymbols(), data_dir, split="dev", training=False)   # 2 shards
  assert [b["inputs"].shape[0] for b in batches] == [4, 4, 1]
  decoded = [vocab.decode(row) for b in batches for row in b["inputs"]]
  assert decoded == [_sentence(i) for i in range(9)]
  # The untruncated reference text rides along for the text metrics.
  hp = dataclasses.replace(HP, max_target_length=2)
  texts = [t.decode() for b in _batches(ToySymbols(), data_dir, "dev", False, hp=hp)
           for t in b["targets_text"]]
  assert texts == [_sentence(i + 1) for i in range(9)]
  assert all(b[k].shape[1] % HP.length_bucket_step == 0 for b in batches for k in ("inputs", "targets"))


def test_a_sample_is_seeded_and_spread_over_the_split(data_dir):
  vocab = load_vocab(data_dir)

  def sampled(seed):
    ds = inputs.problem_dataset(ToySymbols(), "dev", data_dir, HP, training=False, seed=seed, sample=5)
    return [vocab.decode(row) for b in ds.as_numpy_iterator() for row in b["inputs"]]

  indices = inputs.sample_indices(9, 5, seed=0)
  assert sampled(0) == sampled(0) == [_sentence(i) for i in indices]   # dev: generation order
  assert sampled(1) != sampled(0) and len(sampled(1)) == 5
  assert len({i % ToySymbols.dev_shards for i in indices}) == 2


def test_image_batches(data_dir):
  batches = _batches(ToyImages(), data_dir, split="dev", training=False)
  assert [b["inputs"].shape for b in batches] == [(4, 6, 6, 3), (2, 6, 6, 3)]
  assert all(b["inputs"].dtype == np.float32 and 0 <= b["inputs"].min() and b["inputs"].max() <= 1
             for b in batches)
  labels = np.concatenate([b["targets"] for b in batches])
  assert labels.dtype == np.int32 and labels.shape == (6, 1) and labels[:, 0].tolist() == [0, 1, 2] * 2
  # Aspect kept: a 5x7 image leaves zero rows above and below.
  image = batches[0]["inputs"][0]
  assert not image[0].any() and not image[5].any() and image[1:5].all()
  train = _batches(ToyImages(), data_dir, n=5)
  assert all(b["inputs"].shape == (4, 6, 6, 3) and b["targets"].shape == (4, 1) for b in train)


def test_audio_batches_truncate_and_pad_frames(data_dir):
  frames_multiple = HP.length_bucket_step * 2 ** HP.audio_time_strides   # 8
  max_frames = HP.max_input_length * 2 ** HP.audio_time_strides           # 24
  for batch in _batches(ToySpeech(), data_dir, n=8):
    audio = batch["inputs"]
    assert audio.dtype == np.float32 and audio.shape[2] == 80 and audio.shape[0] == HP.batch_size
    assert audio.shape[1] % frames_multiple == 0 and audio.shape[1] <= max_frames
    assert batch["targets"].shape[1] % HP.length_bucket_step == 0
  dev = _batches(ToySpeech(), data_dir, split="dev", training=False)
  expected = np.random.default_rng(0).normal(size=(3, 80)).astype(np.float16).astype(np.float32)
  np.testing.assert_array_equal(dev[0]["inputs"][0, :3], expected)
  assert not dev[0]["inputs"][0, 3:].any()


def test_same_seed_same_batches_other_seed_other_batches(data_dir):
  first = _batches(ToySymbols(), data_dir, seed=3, n=20)
  _assert_same_batches(first, _batches(ToySymbols(), data_dir, seed=3, n=20))
  other = _batches(ToySymbols(), data_dir, seed=4, n=20)
  assert any(a["inputs"].shape != b["inputs"].shape or (a["inputs"] != b["inputs"]).any()
             for a, b in zip(first, other))


def test_training_covers_every_example_each_epoch(data_dir):
  vocab = load_vocab(data_dir)
  hp = dataclasses.replace(HP, batch_size=1)
  seen = [vocab.decode(b["inputs"][0]) for b in _batches(ToySymbols(), data_dir, n=60, hp=hp)]
  assert sorted(seen[:30]) == sorted(_sentence(i) for i in range(30))
  assert sorted(seen[30:]) == sorted(seen[:30]) and seen[30:] != seen[:30]


def test_resume_by_skipping_gives_the_same_batches(data_dir):
  full = _batches(ToySymbols(), data_dir, seed=1, n=15)
  ds = inputs.problem_dataset(ToySymbols(), "train", data_dir, HP, training=True, seed=1)
  _assert_same_batches(full[9:], list(ds.skip(9).take(6).as_numpy_iterator()))


def test_iterator_checkpoint_resumes_exactly(data_dir, tmp_path):
  ds = inputs.problem_dataset(ToySymbols(), "train", data_dir, HP, training=True, seed=2)
  iterator = iter(ds)
  for _ in range(5):
    next(iterator)
  path = tf.train.Checkpoint(data=iterator).save(str(tmp_path / "ckpt"))
  expected = [next(iterator) for _ in range(4)]
  restored = iter(ds)
  tf.train.Checkpoint(data=restored).restore(path)
  _assert_same_batches([{k: v.numpy() for k, v in b.items()} for b in expected],
                       [{k: v.numpy() for k, v in next(restored).items()} for _ in range(4)])


# --- Batches by tokens (batch_tokens > 0). ---------------------------------------------------------


def _positions(batch, problem, hp):
  """A batch's bucket length in body positions: the longer of its padded inputs and targets."""
  return max(inputs.body_positions(problem.input_modality, hp, batch["inputs"].shape[1]),
             inputs.body_positions(problem.target_modality, hp, batch["targets"].shape[1]))


def test_body_positions_match_the_modality_nets():
  for size in (6, 8, 16, 33):
    hp = dataclasses.replace(HP, hidden_size=16, image_size=size)
    x, _, _ = ImageModality(16, image_size=size).bottom(tf.zeros([1, size, size, 3]))
    assert inputs.body_positions("image", hp) == x.shape[1], size
  for strides, frames in ((1, 8), (1, 7), (2, 24), (3, 40)):
    hp = dataclasses.replace(HP, audio_blocks=3, audio_time_strides=strides)
    x, _, _ = AudioModality(16, blocks=3, time_strides=strides).bottom(
        tf.ones([1, frames, 80]))
    assert inputs.body_positions("audio", hp, frames) == x.shape[1], (strides, frames)
  assert inputs.body_positions("symbol", HP, 12) == 12
  assert inputs.body_positions("class_label", HP) == 1
  with pytest.raises(KeyError, match="Unknown modality 'video'. Known modalities: audio"):
    inputs.body_positions("video", HP)


@pytest.mark.parametrize("problem", [ToySymbols(), ToySpeech()], ids=lambda p: p.name)
def test_batch_tokens_bound_examples_times_bucket_length(data_dir, problem):
  hp = dataclasses.replace(HP, batch_tokens=24)
  by_length = {}
  for batch in _batches(problem, data_dir, n=40, hp=hp):
    length = _positions(batch, problem, hp)
    examples = batch["inputs"].shape[0]
    assert batch["targets"].shape[0] == examples
    assert examples == max(1, hp.batch_tokens // length), (examples, length)
    assert examples * length <= hp.batch_tokens or examples == 1
    by_length.setdefault(length, set()).add(examples)
  assert all(len(sizes) == 1 for sizes in by_length.values())
  lengths = sorted(by_length)
  assert len(lengths) >= 2, by_length
  sizes = [by_length[length].pop() for length in lengths]
  assert sizes == sorted(sizes, reverse=True) and sizes[0] > sizes[-1]  # short buckets: more examples


def test_batch_tokens_image_batches_hold_tokens_over_grid_positions(data_dir):
  hp = dataclasses.replace(HP, batch_tokens=20)
  grid = inputs.body_positions("image", hp)
  assert grid == 9                                                      # 6x6 -> 3x3
  train = _batches(ToyImages(), data_dir, n=6, hp=hp)
  assert all(b["inputs"].shape == (20 // 9, 6, 6, 3) and b["targets"].shape == (2, 1) for b in train)
  # Fewer tokens than one image's positions: one image a batch.
  small = dataclasses.replace(HP, batch_tokens=5)
  assert all(b["inputs"].shape[0] == 1 for b in _batches(ToyImages(), data_dir, n=4, hp=small))
  # Evaluation keeps eval_batch_size.
  assert [b["inputs"].shape[0] for b in _batches(ToyImages(), data_dir, "dev", False, hp=hp)] == [4, 2]


def test_batch_tokens_same_seed_same_batches_and_resume_by_skipping(data_dir):
  hp = dataclasses.replace(HP, batch_tokens=24)
  first = _batches(ToySymbols(), data_dir, seed=5, n=16, hp=hp)
  _assert_same_batches(first, _batches(ToySymbols(), data_dir, seed=5, n=16, hp=hp))
  ds = inputs.problem_dataset(ToySymbols(), "train", data_dir, hp, training=True, seed=5)
  _assert_same_batches(first[10:], list(ds.skip(10).take(6).as_numpy_iterator()))
  other = _batches(ToySymbols(), data_dir, seed=6, n=16, hp=hp)
  assert any(a["inputs"].shape != b["inputs"].shape or (a["inputs"] != b["inputs"]).any()
             for a, b in zip(first, other))


def _copy_problem(data_dir, tmp_path, name="toy_symbols"):
  target = str(tmp_path / "copy")
  os.makedirs(target)
  for file in os.listdir(data_dir):
    if file.startswith(name) or file.startswith("vocab"):
      shutil.copy(os.path.join(data_dir, file), target)
  return target


def test_check_shards_passes_on_good_data(data_dir):
  assert shards.check_shards(ToySymbols(), "train", data_dir) == 30
  assert shards.check_shards(ToySpeech(), "dev", data_dir) == 5


@pytest.mark.parametrize("damage", ["truncate", "flip", "drop_record"])
def test_a_damaged_shard_is_named(data_dir, tmp_path, damage):
  copy = _copy_problem(data_dir, tmp_path)
  shard = data_dir_lib.shard_path(copy, "toy_symbols", "train", 1, 3)
  raw = open(shard, "rb").read()
  damaged = {"truncate": raw[:-7], "flip": raw[:40] + bytes([raw[40] ^ 0xFF]) + raw[41:],
             "drop_record": raw[:16 + int.from_bytes(raw[:8], "little")]}[damage]
  with open(shard, "wb") as f:
    f.write(damaged)
  with pytest.raises(shards.CorruptDataError, match=f"{shard}.*mm-datagen --problems=toy_symbols"):
    shards.check_shards(ToySymbols(), "train", copy)
  if damage == "drop_record":  # whole records missing: only the manifest's count tells.
    return
  with pytest.raises(tf.errors.OpError) as raised:
    _batches(ToySymbols(), copy, n=30)
  error = shards.as_corrupt_data_error(raised.value)
  assert isinstance(error, shards.CorruptDataError) and shard in str(error)
  assert "\n" not in str(error)


def test_a_missing_shard_is_named(data_dir, tmp_path):
  copy = _copy_problem(data_dir, tmp_path)
  shard = data_dir_lib.shard_path(copy, "toy_symbols", "train", 2, 3)
  os.remove(shard)
  for call in (lambda: shards.check_shards(ToySymbols(), "train", copy),
               lambda: _batches(ToySymbols(), copy, n=1)):
    with pytest.raises(shards.CorruptDataError, match=shard):
      call()


def test_as_corrupt_data_error_ignores_other_errors():
  assert shards.as_corrupt_data_error(tf.errors.InvalidArgumentError(None, None, "bad shape")) is None


def test_dataset_sizes(data_dir):
  assert data_dir_lib.dataset_sizes([ToySymbols(), ToyImages(), ToySpeech()], data_dir) == {
      "toy_symbols": 30, "toy_images": 10, "toy_speech": 12}
  assert data_dir_lib.dataset_sizes([ToyImages()], data_dir, split="dev") == {"toy_images": 6}


def test_check_vocab(data_dir):
  sha = load_vocab(data_dir).sha256
  assert shards.check_vocab(data_dir, sha) == sha
  assert shards.check_vocab(data_dir, None) is None
  with pytest.raises(shards.VocabMismatchError, match=f"{data_dir}.*{sha[:12]}") as raised:
    shards.check_vocab(data_dir, "0" * 64)
  assert isinstance(raised.value, ValueError) and "\n" not in str(raised.value)
