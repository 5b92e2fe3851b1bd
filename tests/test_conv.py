"""ConvStep, ConvBlock and ConvRes: shapes, config round trips, causality, the cached step."""

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.layers.conv import ConvBlock, ConvRes, ConvStep


@pytest.mark.parametrize("layer, shape, expected", [
    (ConvStep(16, 3, 2), (2, 9, 8), (2, 9, 16)),
    (ConvStep(16, 5, causal=True), (2, 9, 8), (2, 9, 16)),
    (ConvBlock(8, large_kernel_size=5, dropout=0.4), (2, 11, 8), (2, 11, 8)),
    (ConvRes(12, strides=2, rank=1), (2, 9, 8), (2, 5, 12)),
    (ConvRes(12, strides=2, rank=2), (2, 8, 6, 3), (2, 4, 3, 12)),
])
def test_shapes_and_config_round_trip(layer, shape, expected):
  x = tf.random.normal(shape)
  assert tuple(layer(x).shape) == expected
  clone = type(layer).from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()
  clone(x)
  clone.set_weights(layer.get_weights())
  np.testing.assert_allclose(clone(x).numpy(), layer(x).numpy(), atol=1e-6)


def test_causal_block_never_sees_the_future():
  block = ConvBlock(8, large_kernel_size=5, causal=True)
  x = tf.random.normal([1, 12, 8]).numpy()
  base = block(x).numpy()
  x[0, 6:] += 5.0
  after = block(x).numpy()
  np.testing.assert_allclose(after[0, :6], base[0, :6], atol=1e-6)
  assert np.abs(after[0, 6:] - base[0, 6:]).max() > 1e-3


def test_padding_never_leaks_into_real_positions():
  block = ConvBlock(8, large_kernel_size=5)
  x = tf.random.normal([1, 10, 8]).numpy()
  mask = np.array([[True] * 6 + [False] * 4])
  base = block(x, padding_mask=mask).numpy()
  x[0, 6:] = 100.0
  np.testing.assert_allclose(block(x, padding_mask=mask).numpy(), base, atol=1e-5)
  assert not base[0, 6:].any()


def test_step_equals_full_causal_block():
  block = ConvBlock(8, large_kernel_size=5, causal=True)
  x = tf.random.normal([2, 10, 8])
  full = block(x).numpy()
  cache = block.init_cache(2)
  assert [c.shape[1] for c in cache] == [2, 2, 4, 32]  # (kernel - 1) * dilation per step
  for t in range(10):
    y, cache = block.step(x[:, t:t + 1], cache)
    np.testing.assert_allclose(y.numpy()[:, 0], full[:, t], atol=1e-5)


def test_bad_sizes_are_named():
  with pytest.raises(ValueError, match="kernel_size=0"):
    ConvStep(4, 0)
  with pytest.raises(ValueError, match="rank=3"):
    ConvRes(4, rank=3)
