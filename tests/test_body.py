"""The encoder and the target side (I/O mixer + decoder): shapes, configs, padding, cached steps."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from t2t_multimodel.hparams import get_hparams
from t2t_multimodel.model.body import Encoder, ResidualNorm, TargetSide

HP = get_hparams("multimodel_tiny", "dropout=0.0,attention_dropout=0.0,hidden_size=16,num_heads=2,"
                 "filter_size=16")


def test_encoder_shape_config_and_padding():
  encoder = Encoder(HP)
  x = tf.random.normal([2, 9, 16]).numpy()
  mask = np.array([[True] * 9, [True] * 5 + [False] * 4])
  out = encoder(x, padding_mask=mask).numpy()
  assert out.shape == (2, 9, 16) and not out[1, 5:].any()
  assert len(encoder.losses) == 1  # the MoE balancing loss
  x[1, 5:] = 9.0
  np.testing.assert_allclose(encoder(x, padding_mask=mask).numpy(), out, atol=1e-5)
  clone = Encoder.from_config(encoder.get_config())
  assert clone.get_config() == encoder.get_config() and len(clone.blocks) == HP.num_encoder_blocks


def test_residual_norm():
  layer = ResidualNorm(0.5)
  out = layer(tf.random.normal([2, 3, 8]), tf.random.normal([2, 3, 8]))
  np.testing.assert_allclose(out.numpy().mean(-1), 0.0, atol=1e-5)
  assert ResidualNorm.from_config(layer.get_config()).get_config() == layer.get_config()


@pytest.mark.parametrize("use_attention, use_moe", [(True, True), (False, True), (True, False)])
def test_target_side_step_equals_full(use_attention, use_moe):
  hp = dataclasses.replace(HP, use_attention=use_attention, use_moe=use_moe)
  side = TargetSide(hp)
  encoded = tf.random.normal([2, 6, 16])
  state = side.memory(encoded, tf.constant([[True] * 6, [True] * 3 + [False] * 3]))
  y = tf.random.normal([2, 7, 16])
  full = side(y, state).numpy()
  assert full.shape == (2, 7, 16)
  cache = side.init_cache(2, max_length=7)
  for t in range(7):
    out, cache = side(y[:, t:t + 1], state, cache=cache, position=tf.constant(t))
    np.testing.assert_allclose(out.numpy()[:, 0], full[:, t], atol=1e-5)
  assert TargetSide.from_config(side.get_config()).get_config() == side.get_config()


def test_target_side_reads_the_inputs_but_not_their_padding():
  side = TargetSide(HP)
  encoded = tf.random.normal([1, 6, 16]).numpy()
  mask = tf.constant([[True] * 4 + [False] * 2])
  y = tf.random.normal([1, 5, 16])
  base = side(y, side.memory(encoded, mask)).numpy()
  encoded[0, 4:] = 7.0
  np.testing.assert_allclose(side(y, side.memory(encoded, mask)).numpy(), base, atol=1e-5)
  encoded[0, :4] += 1.0
  assert np.abs(side(y, side.memory(encoded, mask)).numpy() - base).max() > 1e-4
