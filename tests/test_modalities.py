"""Modality nets: bottoms into [B, T, D], tops out of it, losses, config round trips."""

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.modalities import (MODALITY_NETS, AudioModality, ClassLabelModality, ImageModality,
                                       SymbolModality, image_blocks, smoothed_cross_entropy)


def test_registry_names():
  assert MODALITY_NETS.names() == ["audio", "class_label", "image", "symbol"]


def test_symbol_bottom_top_loss():
  net = SymbolModality(50, 8)
  ids = tf.constant([[5, 6, 1, 0]])
  x, mask, grid = net.bottom(ids)
  assert x.shape == (1, 4, 8) and mask.numpy().tolist() == [[True, True, True, False]] and grid is None
  logits = net.top(x)
  assert logits.shape == (1, 4, 50)
  loss, weight = net.loss(logits, ids, 0.0)
  assert weight.numpy() == 3 and loss.numpy() > 0


@pytest.mark.parametrize("size, grid", [(16, 8), (32, 8), (224, 14)])
def test_image_entry_flow_to_a_grid(size, grid):
  assert size // 2 ** image_blocks(size) == grid
  net = ImageModality(16, size)
  if size <= 32:
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


def test_class_label_top_from_grid_and_sequence():
  net = ClassLabelModality(16, 10)
  assert net.top(tf.random.normal([2, 16, 16]), grid=(4, 4)).shape == (2, 10)
  mask = tf.constant([[True] * 6 + [False] * 2] * 2)
  assert net.top(tf.random.normal([2, 8, 16]), mask=mask).shape == (2, 10)
  loss, weight = net.loss(tf.zeros([2, 10]), tf.constant([[1], [2]]), 0.1)
  assert weight.numpy() == 2 and loss.numpy() == pytest.approx(np.log(10), rel=1e-5)


def test_label_smoothing_raises_the_floor():
  logits = tf.constant([[10.0, 0.0, 0.0]])
  sharp, _ = smoothed_cross_entropy(logits, tf.constant([0]), tf.ones([1]), 0.0)
  smooth, _ = smoothed_cross_entropy(logits, tf.constant([0]), tf.ones([1]), 0.3)
  assert smooth.numpy() > sharp.numpy()


@pytest.mark.parametrize("net", [SymbolModality(20, 8), ImageModality(8, 16), AudioModality(8, 2, 1),
                                 ClassLabelModality(8, 3)])
def test_config_round_trip(net):
  assert type(net).from_config(net.get_config()).get_config() == net.get_config()
