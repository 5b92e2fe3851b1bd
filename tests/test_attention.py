"""Multi-head attention and the timing signal."""

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.layers.attention import Attention, causal_bias, padding_bias, timing_signal


def test_timing_signal_shape_and_offset():
  signal = timing_signal(10, 16).numpy()
  assert signal.shape == (10, 16)
  np.testing.assert_allclose(timing_signal(3, 16, start=7).numpy(), signal[7:], atol=1e-6)
  assert timing_signal(4, 7).shape == (4, 7)


def test_shapes_and_config_round_trip():
  attention = Attention(16, num_heads=4)
  q, m = tf.random.normal([2, 5, 16]), tf.random.normal([2, 7, 16])
  out = attention(q, m)
  assert out.shape == (2, 5, 16)
  clone = Attention.from_config(attention.get_config())
  clone(q, m)
  clone.set_weights(attention.get_weights())
  np.testing.assert_allclose(clone(q, m).numpy(), out.numpy(), atol=1e-6)


def test_padding_bias_hides_memory_positions():
  attention = Attention(8, num_heads=2)
  q, m = tf.random.normal([1, 3, 8]), tf.random.normal([1, 6, 8]).numpy()
  bias = padding_bias(tf.constant([[True] * 4 + [False] * 2]))
  base = attention(q, m, bias).numpy()
  m[0, 4:] = 50.0
  np.testing.assert_allclose(attention(q, m, bias).numpy(), base, atol=1e-5)


def test_causal_bias_and_projected_memory():
  attention = Attention(8, num_heads=2)
  x = tf.random.normal([1, 5, 8])
  full = attention(x, x, causal_bias(5)).numpy()
  keys, values = attention.project_memory(x[:, :3])
  np.testing.assert_allclose(attention.attend(x[:, 2:3], keys, values).numpy()[:, 0], full[:, 2], atol=1e-5)


def test_heads_must_divide():
  with pytest.raises(ValueError, match="hidden_size=10, num_heads=4"):
    Attention(10, 4)
