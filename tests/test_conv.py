"""ConvStep, ConvBlock and ConvRes: shapes, config round trips, causality, masking, the cached call;
our SeparableConv1D against Keras's."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.layers.conv import ConvBlock, ConvRes, ConvStep, SeparableConv1D


@pytest.mark.parametrize("layer, shape, expected", [
    (ConvStep(16, 3, 2), (2, 9, 8), (2, 9, 16)),
    (ConvStep(16, 5, causal=True), (2, 9, 8), (2, 9, 16)),
    (ConvStep(16, 3, strides=2), (2, 9, 8), (2, 5, 16)),
    (ConvStep(16, 4, dilation_rate=2, strides=3), (2, 10, 8), (2, 4, 16)),
    (ConvBlock(8, large_kernel_size=5, dropout=0.4), (2, 11, 8), (2, 11, 8)),
    (ConvRes(12, strides=2, rank=1), (2, 9, 8), (2, 5, 12)),
    (ConvRes(12, strides=1, rank=1), (2, 9, 8), (2, 9, 12)),
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


@pytest.mark.parametrize("options", [
    {"kernel_size": 3}, {"kernel_size": 15, "dilation_rate": 8},
    {"kernel_size": 3, "strides": 2, "padding": "same"}, {"kernel_size": 2, "depth_multiplier": 2},
])
def test_separable_conv_is_keras_separable_conv_with_its_weights(options):
  """The pointwise half as a matmul changes no output and no gradient."""
  x = tf.random.normal([3, 130, 8])
  theirs, ours = keras.layers.SeparableConv1D(12, **options), SeparableConv1D(12, **options)
  theirs.build(x.shape)
  ours.build(x.shape)
  ours.set_weights([w + 0.1 * i for i, w in enumerate(theirs.get_weights())])  # a non-zero bias
  theirs.set_weights(ours.get_weights())
  outputs, grads = [], []
  for layer in (theirs, ours):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = layer(x)
      loss = tf.reduce_sum(y * tf.sin(y))
    outputs.append(y.numpy())
    grads.append([g.numpy() for g in tape.gradient(loss, [x] + layer.trainable_weights)])
  np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)
  for ours_grad, theirs_grad in zip(grads[1], grads[0]):
    np.testing.assert_allclose(ours_grad, theirs_grad, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("kernel_size, dilation_rate, length", [(3, 1, 3), (15, 8, 113), (5, 2, 20)])
def test_window_output_is_the_convolutions_last_output(kernel_size, dilation_rate, length):
  """The cached step's shortcut: one output from the kernel's inputs alone, as the conv op."""
  layer = SeparableConv1D(12, kernel_size, dilation_rate=dilation_rate)
  x = tf.random.normal([3, length, 8])
  layer.build(x.shape)
  layer.set_weights([w + 0.1 * i for i, w in enumerate(layer.get_weights())])
  window = x[:, -((kernel_size - 1) * dilation_rate + 1)::dilation_rate]  # [B, K, C]
  np.testing.assert_allclose(layer.window_output(window).numpy(), layer(x)[:, -1:].numpy(), atol=1e-5)
  with pytest.raises(ValueError, match="stride 1"):
    SeparableConv1D(4, 3, strides=2).window_output(window)


def test_conv_step_is_relu_sepconv_layernorm():
  step = ConvStep(4, 3)
  x = tf.random.normal([1, 6, 4])
  y = step(x).numpy()
  np.testing.assert_allclose(y.mean(-1), 0.0, atol=1e-5)  # layer-normalised over channels
  np.testing.assert_allclose(step(-tf.nn.relu(x)).numpy(), step(tf.zeros_like(x)).numpy(), atol=1e-6)


def test_causal_block_never_sees_the_future():
  block = ConvBlock(8, large_kernel_size=5, causal=True)
  x = tf.random.normal([1, 40, 8]).numpy()
  base = block(x).numpy()
  x[0, 6:] += 5.0
  after = block(x).numpy()
  np.testing.assert_allclose(after[0, :6], base[0, :6], atol=1e-6)
  assert np.abs(after[0, 6:] - base[0, 6:]).max() > 1e-3


def test_receptive_field_of_a_block():
  """3 + 3 + k + (k - 1) * 8 + 1 - 3 positions: the causal block sees exactly that far back."""
  block = ConvBlock(8, large_kernel_size=5, causal=True)
  reach = 2 + 2 + 4 + 4 * 8  # sum of (kernel - 1) * dilation over the four steps
  x = tf.random.normal([1, reach + 3, 8]).numpy()
  base = block(x).numpy()
  x[0, 0] += 5.0
  after = block(x).numpy()
  assert np.abs(after[0, reach] - base[0, reach]).max() > 1e-4
  np.testing.assert_allclose(after[0, reach + 1:], base[0, reach + 1:], atol=1e-6)


def test_padding_never_leaks_into_real_positions():
  block = ConvBlock(8, large_kernel_size=5)
  x = tf.random.normal([1, 10, 8]).numpy()
  mask = np.array([[True] * 6 + [False] * 4])
  base = block(x, padding_mask=mask).numpy()
  x[0, 6:] = 100.0
  np.testing.assert_allclose(block(x, padding_mask=mask).numpy(), base, atol=1e-5)
  assert not base[0, 6:].any()


def test_dropout_only_in_training():
  block = ConvBlock(8, large_kernel_size=5, dropout=0.5)
  x = tf.random.normal([2, 10, 8])
  np.testing.assert_array_equal(block(x).numpy(), block(x, training=False).numpy())
  dropped = block(x, training=True).numpy()
  assert (dropped == 0).mean() > 0.3


def test_step_equals_full_causal_block():
  block = ConvBlock(8, large_kernel_size=5, causal=True)
  x = tf.random.normal([2, 40, 8])  # longer than the dilated step's context (32): its slots wrap
  full = block(x).numpy()
  cache = block.init_cache(2)
  # Per step, one buffer of kernel - 1 rows per phase of its dilation: (kernel - 1) * dilation rows.
  assert [[c.shape[1] for c in slots] for slots in cache] == [[2], [2], [4], [4] * 8]
  step = tf.function(lambda x, cache: block(x, cache=cache))
  for t in range(40):
    y, cache = step(x[:, t:t + 1], cache)
    np.testing.assert_allclose(y.numpy()[:, 0], full[:, t], atol=1e-5)
  y, cache = block(x[:, :35], cache=block.init_cache(2))  # a cache takes several positions too
  np.testing.assert_allclose(y.numpy(), full[:, :35], atol=1e-5)
  for t in range(35, 40):  # and one at a time after them
    y, cache = step(x[:, t:t + 1], cache)
    np.testing.assert_allclose(y.numpy()[:, 0], full[:, t], atol=1e-5)
  y, _ = block(x[:, 37:], cache=block(x[:, :37], cache=block.init_cache(2))[1])
  np.testing.assert_allclose(y.numpy(), full[:, 37:], atol=1e-5)


def test_only_causal_steps_take_a_cache():
  step = ConvStep(4, 3)
  step.build((None, None, 4))
  with pytest.raises(ValueError, match="causal"):
    step(tf.ones([1, 2, 4]), cache=[tf.zeros([1, 2, 4])])


def test_bad_sizes_are_named():
  with pytest.raises(ValueError, match="kernel_size=0"):
    ConvStep(4, 0)
  with pytest.raises(ValueError, match="strides=2"):
    ConvStep(4, 3, strides=2, causal=True)
  with pytest.raises(ValueError, match="rank=3"):
    ConvRes(4, rank=3)


def test_conv_res_sequence_padding_changes_nothing_real():
  layer = ConvRes(8, strides=2, rank=1)
  x = tf.random.normal([1, 7, 4]).numpy()
  alone = layer(x[:, :5]).numpy()                                          # [1, 3, 8]
  x[0, 5:] = 50.0
  mask = tf.constant([[True] * 5 + [False] * 2])
  padded = layer(x, padding_mask=mask).numpy()                             # [1, 4, 8]
  np.testing.assert_allclose(padded[:, :3], alone, atol=1e-5)
  assert not padded[:, 3:].any() and layer.output_mask(mask).numpy().tolist() == [[True] * 3 + [False]]
