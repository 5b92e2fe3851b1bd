"""Multi-head attention, the timing signal and the paper's attention block (with its cached call)."""

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.layers.attention import (Attention, AttentionBlock, causal_bias, padding_bias,
                                             timing_signal)


def test_timing_signal_shape_and_offset():
  signal = timing_signal(10, 16).numpy()
  assert signal.shape == (10, 16)
  np.testing.assert_allclose(timing_signal(3, 16, start=7).numpy(), signal[7:], atol=1e-6)
  np.testing.assert_allclose(signal[0], [0.0] * 8 + [1.0] * 8)  # sin(0), cos(0)
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
  step = attention.attend(x[:, 2:3], keys, values).numpy()                 # position 2 alone
  np.testing.assert_allclose(step[:, 0], full[:, 2], atol=1e-5)


def test_heads_must_divide():
  with pytest.raises(ValueError, match="hidden_size=10, num_heads=4"):
    Attention(10, 4)


def _block_and_memory(seed=0):
  tf.random.set_seed(seed)
  block = AttentionBlock(16, num_heads=4)
  source = tf.random.normal([2, 7, 16])
  bias = padding_bias(tf.constant([[True] * 7, [True] * 4 + [False] * 3]))
  keys, values = block.project_memory(source)
  return block, source, bias, keys, values


def test_attention_block_shape_and_config_round_trip():
  block, source, bias, keys, values = _block_and_memory()
  targets = tf.random.normal([2, 5, 16])
  out = block(targets, keys, values, bias)
  assert out.shape == (2, 5, 16) and keys.shape == (2, 4, 7, 4)
  clone = AttentionBlock.from_config(block.get_config())
  assert clone.get_config() == block.get_config()
  clone.project_memory(source)  # builds it
  clone.set_weights(block.get_weights())
  clone_keys, clone_values = clone.project_memory(source)
  clone_out = clone(targets, clone_keys, clone_values, bias).numpy()
  np.testing.assert_allclose(clone_out, out.numpy(), atol=1e-5)


def test_attention_block_is_causal_and_ignores_padded_source():
  block, source, bias, keys, values = _block_and_memory()
  targets = tf.random.normal([2, 8, 16]).numpy()
  base = block(targets, keys, values, bias).numpy()
  changed = targets.copy()
  changed[:, 5:] += 3.0
  after = block(changed, keys, values, bias).numpy()
  np.testing.assert_allclose(after[:, :5], base[:, :5], atol=1e-5)
  assert np.abs(after[:, 5:] - base[:, 5:]).max() > 1e-3
  padded = source.numpy()
  padded[1, 4:] = 40.0
  keys2, values2 = block.project_memory(padded)
  np.testing.assert_allclose(block(targets, keys2, values2, bias).numpy()[1], base[1], atol=1e-5)


def test_attention_block_step_equals_full():
  block, _, bias, keys, values = _block_and_memory(seed=3)
  targets = tf.random.normal([2, 9, 16])
  full = block(targets, keys, values, bias).numpy()
  cache = block.init_cache(2, max_length=12)
  assert cache["keys"].shape == (2, 4, 12, 4)
  assert [[b.shape[1] for b in slots] for slots in cache["convs"]] == [[4], [4] * 4]  # per phase
  # one call path: `call` with a cache; one trace serves every position
  step = tf.function(lambda x, t, cache: block(x, keys, values, bias, cache=cache, position=t))
  for t in range(9):
    out, cache = step(targets[:, t:t + 1], tf.constant(t), cache)
    np.testing.assert_allclose(out.numpy()[:, 0], full[:, t], atol=1e-5)
  assert step.experimental_get_tracing_count() == 1
