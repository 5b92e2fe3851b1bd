"""Modalities: the registry, and their nets: bottoms into [B, T, D], tops out of it, losses, masks,
config round trips."""

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.modalities import MODALITIES
from t2t_multimodel.modalities.audio import AudioModality, normalize_frames
from t2t_multimodel.modalities.base import smoothed_cross_entropy
from t2t_multimodel.modalities.class_label import ClassLabelModality
from t2t_multimodel.modalities.image import image_strides, ImageModality
from t2t_multimodel.modalities.symbol import SymbolModality
from t2t_multimodel.registry import UnknownNameError


def test_registry_names_and_nets():
  assert MODALITIES.names() == ["audio", "class_label", "image", "symbol"]
  hp = get_hparams("multimodel_tiny")
  problem = {"input_modality": "image", "target_modality": "class_label", "num_classes": 10}
  image, label, symbol = (MODALITIES.get(n) for n in ("image", "class_label", "symbol"))
  for name in MODALITIES.names():
    modality = MODALITIES.get(name)
    net = modality.net(hp, problem, image)
    assert hasattr(net, "bottom") or hasattr(net, "top")
    assert net.name == modality.net_key(problem, image)
    role = "targets" if modality.autoregressive or name == "class_label" else "inputs"
    assert modality.dummy(hp, 2, role).shape[0] == 2
  assert label.net_key(problem, image) == "class_label_10"
  assert label.net_key(problem, symbol) == "class_label_10_seq"
  assert symbol.net_key(problem, image) == "symbol"
  with pytest.raises(UnknownNameError, match="Unknown modality 'video'. Known modalities: audio"):
    MODALITIES.get("video")


def test_every_modality_round_trips_a_value_through_its_codec(tmp_path):
  """encode -> parse with spec -> decode, as mm-datagen and the input pipeline do."""
  from t2t_multimodel.vocab import SubwordVocab
  vocab = SubwordVocab.build(["hello world"] * 20, str(tmp_path / "v.model"), vocab_size=300)
  from t2t_multimodel.modalities.image import to_rgb_png
  import io
  from PIL import Image
  buffer = io.BytesIO()
  Image.fromarray(np.full((3, 5, 3), 255, np.uint8)).save(buffer, format="PNG")
  values = {"symbol": "hello world", "image": to_rgb_png(buffer.getvalue()),
            "audio": np.ones([7, 80], np.float32), "class_label": 3}
  for name, value in values.items():
    modality = MODALITIES.get(name)
    example = tf.train.Example(features=tf.train.Features(feature={"x": modality.encode(value, vocab)}))
    parsed = tf.io.parse_single_example(example.SerializeToString(), {"x": modality.spec()})["x"]
    decoded = modality.decode(parsed)
    if name == "symbol":
      assert modality.to_text(decoded.numpy(), vocab) == "hello world"
    elif name == "image":
      assert decoded.shape == (3, 5, 3) and float(tf.reduce_min(decoded)) == 1.0
    elif name == "audio":
      np.testing.assert_array_equal(decoded.numpy(), value)
    else:
      assert modality.to_text(decoded.numpy(), None, ["a", "b", "c", "d"]) == "d"


def test_symbol_bottom_top_loss():
  net = SymbolModality(50, 8)
  ids = tf.constant([[5, 6, 1, 0]])
  x, mask, grid = net.bottom(ids)
  assert x.shape == (1, 4, 8) and mask.numpy().tolist() == [[True, True, True, False]] and grid is None
  np.testing.assert_allclose(x.numpy(), net.embedding(ids).numpy() * np.sqrt(8), rtol=1e-6)
  logits = net.top(x)
  assert logits.shape == (1, 4, 50)
  loss, weight = net.loss(logits, ids, 0.0)
  assert weight.numpy() == 3 and loss.numpy() > 0


@pytest.mark.parametrize("size, grid", [(8, 4), (16, 8), (32, 8), (64, 8), (224, 14)])
def test_image_entry_flow_to_a_grid(size, grid):
  assert -(-size // 2 ** image_strides(size)) == grid
  if size <= 32:
    net = ImageModality(16, size)
    x, mask, shape = net.bottom(tf.random.uniform([2, size, size, 3]))
    assert x.shape == (2, grid * grid, 16) and shape == (grid, grid) and mask.shape == (2, grid * grid)


def test_audio_strides_time_and_mask():
  net = AudioModality(16, blocks=3, time_strides=2)
  frames = np.random.normal(size=(2, 40, 80)).astype(np.float32)
  frames[1, 20:] = 0.0  # padding
  x, mask, _ = net.bottom(tf.constant(frames))
  assert x.shape == (2, 10, 16)
  assert mask.numpy().sum(1).tolist() == [10, 5]
  assert not x.numpy()[1, 5:].any()
  alone, _, _ = net.bottom(tf.constant(frames[1:, :20]))  # the same frames without padding
  np.testing.assert_allclose(alone.numpy()[0], x.numpy()[1, :5], atol=1e-5)


def test_normalize_frames_per_utterance_and_bin_ignoring_padding():
  rng = np.random.default_rng(0)
  frames = (rng.normal(size=(2, 30, 80)) * 4.0 - 7.0).astype(np.float32)  # log-mel-like scale
  frames[1, 12:] = 0.0  # padding
  mask = tf.reduce_any(tf.not_equal(frames, 0.0), axis=-1)
  out = normalize_frames(tf.constant(frames), mask).numpy()
  for example, length in ((0, 30), (1, 12)):
    real = out[example, :length]
    np.testing.assert_allclose(real.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(real.std(0), 1.0, atol=1e-3)
  assert not out[1, 12:].any()
  np.testing.assert_allclose(out[1, :12], normalize_frames(
      tf.constant(frames[1:, :12]), tf.ones([1, 12], tf.bool)).numpy()[0], atol=1e-5)


def test_audio_normalize_makes_the_net_blind_to_gain_and_offset():
  net = AudioModality(16, blocks=2, time_strides=1, normalize=True)
  frames = np.random.normal(size=(1, 24, 80)).astype(np.float32) - 5.0
  x, _, _ = net.bottom(tf.constant(frames))
  shifted, _, _ = net.bottom(tf.constant(frames * 3.0 - 2.0))
  np.testing.assert_allclose(shifted.numpy(), x.numpy(), atol=1e-4)
  # The default keeps the raw features of runs made before the option; the named sets normalise.
  assert not AudioModality(16, blocks=2, time_strides=1).normalize
  assert get_hparams("multimodel_small").audio_normalize


def test_audio_odd_lengths_follow_the_strides():
  x, mask, _ = AudioModality(8, blocks=2, time_strides=2).bottom(tf.ones([1, 9, 80]))
  assert x.shape == (1, 3, 8) and mask.shape == (1, 3)
  with pytest.raises(ValueError, match="time_strides=3, blocks=2"):
    AudioModality(8, blocks=2, time_strides=3)


def test_class_label_top_from_grid_and_sequence():
  grid_net = ClassLabelModality(16, 10, rank=2)
  assert grid_net.top(tf.random.normal([2, 16, 16]), grid=(4, 4)).shape == (2, 10)
  seq_net = ClassLabelModality(16, 10, rank=1)
  body = tf.random.normal([2, 8, 16]).numpy()
  mask = tf.constant([[True] * 6 + [False] * 2] * 2)
  logits = seq_net.top(body, mask=mask).numpy()
  assert logits.shape == (2, 10)
  body[:, 6:] = 30.0  # padding changes nothing
  np.testing.assert_allclose(seq_net.top(body, mask=mask).numpy(), logits, atol=1e-5)
  np.testing.assert_allclose(seq_net.top(body[:, :6]).numpy(), logits, atol=1e-5)
  loss, weight = seq_net.loss(tf.zeros([2, 10]), tf.constant([[1], [2]]), 0.1)
  assert weight.numpy() == 2 and loss.numpy() == pytest.approx(np.log(10), rel=1e-5)


def test_label_smoothing_raises_the_floor():
  logits = tf.constant([[10.0, 0.0, 0.0]])
  sharp, _ = smoothed_cross_entropy(logits, tf.constant([0]), tf.ones([1]), 0.0)
  smooth, _ = smoothed_cross_entropy(logits, tf.constant([0]), tf.ones([1]), 0.3)
  assert smooth.numpy() > sharp.numpy()


@pytest.mark.parametrize("net", [SymbolModality(20, 8), ImageModality(8, 16), AudioModality(8, 2, 1),
                                 AudioModality(8, 2, 1, normalize=True),
                                 ClassLabelModality(8, 3, rank=1), ClassLabelModality(8, 3, rank=2)])
def test_config_round_trip(net):
  assert type(net).from_config(net.get_config()).get_config() == net.get_config()
