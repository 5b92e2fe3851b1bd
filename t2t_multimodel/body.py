"""The shared body of the MultiModel (paper section 2.3): encoder, I/O mixer and decoder.

  encoder: ConvBlocks with a mixture of experts in the middle           [B, S, D] -> [B, S, D]
  mixer:   causal self-attention + attention to the inputs, ConvBlocks  [B, T, D] -> [B, T, D]
  decoder: blocks of causal ConvBlock + attention to the inputs, MoE in the middle; causal

With `use_attention=False` (the paper's Table 4 ablation) the target side sees the inputs only
through their masked mean, added to every target position. The mixer and decoder have a `step`
that computes one target position from a cache, equal to the full computation at that position.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.layers.attention import Attention, causal_bias, padding_bias, timing_signal
from t2t_multimodel.layers.conv import ConvBlock, apply_mask
from t2t_multimodel.layers.moe import MixtureOfExperts


class _Residual(keras.layers.Layer):
  """x -> LayerNorm(x + dropout(f(x))): the wrapper of every attention and MoE sublayer."""

  def __init__(self, dropout: float, **kwargs):
    super().__init__(**kwargs)
    self.dropout = keras.layers.Dropout(dropout)
    self.norm = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")

  def call(self, x, fx, training=False):
    return self.norm(x + self.dropout(fx, training=training))


def _moe(hp: HParams, name: str) -> MixtureOfExperts:
  return MixtureOfExperts(hp.num_experts, hp.moe_k, hp.filter_size, noise_eps=hp.moe_noise_eps,
                          loss_coef=hp.moe_loss_coef, name=name)


class Encoder(keras.layers.Layer):
  """hp.num_encoder_blocks ConvBlocks with a MoE layer after the middle one."""

  def __init__(self, hp: HParams, **kwargs):
    super().__init__(**kwargs)
    self.use_moe = hp.use_moe
    self.middle = (hp.num_encoder_blocks - 1) // 2
    self.blocks = [ConvBlock(hp.hidden_size, hp.large_kernel_size, hp.dropout, name=f"block_{i}")
                   for i in range(hp.num_encoder_blocks)]
    if hp.use_moe:
      self.moe = _moe(hp, "moe")
      self.moe_residual = _Residual(hp.dropout, name="moe_residual")

  def call(self, x, padding_mask, training=False):
    mask = padding_mask                                                    # [B, S]
    for i, block in enumerate(self.blocks):
      x = block(x, padding_mask=mask, training=training)                   # [B, S, D]
      if self.use_moe and i == self.middle:
        x = apply_mask(self.moe_residual(x, self.moe(x, mask=mask, training=training), training=training), mask)
    return x


class Memory:
  """What the target side needs of the encoded inputs, computed once per input."""

  @staticmethod
  def build(encoded, mask, attentions) -> dict:
    """encoded [B, S, D], mask [B, S] -> a dict of batch-major tensors (beam search tiles them)."""
    positions = encoded + timing_signal(tf.shape(encoded)[1], encoded.shape[-1])[None]
    weights = tf.cast(mask, encoded.dtype)[:, :, None]                     # [B, S, 1]
    pooled = tf.reduce_sum(encoded * weights, 1, keepdims=True) / tf.maximum(
        tf.reduce_sum(weights, 1, keepdims=True), 1.0)                     # [B, 1, D]
    state = {"bias": padding_bias(mask), "pooled": pooled}                 # bias: [B, 1, 1, S]
    for name, attention in attentions.items():
      state[f"{name}/keys"], state[f"{name}/values"] = attention.project_memory(positions)
    return state


class TargetSide(keras.layers.Layer):
  """The I/O mixer and the decoder: every layer that reads the (shifted) targets."""

  def __init__(self, hp: HParams, **kwargs):
    super().__init__(**kwargs)
    d, h, dropout = hp.hidden_size, hp.num_heads, hp.dropout
    self.hp = hp
    self.use_attention, self.use_moe = hp.use_attention, hp.use_moe
    self.moe_after = (hp.num_decoder_blocks - 1) // 2
    block = lambda name: ConvBlock(d, hp.large_kernel_size, dropout, causal=True, name=name)
    self.mixer_blocks = [block(f"mixer_block_{i}") for i in range(hp.num_mixer_blocks)]
    self.decoder_blocks = [block(f"decoder_block_{i}") for i in range(hp.num_decoder_blocks)]
    self.attentions, self.residuals = {}, {}
    if hp.use_attention:
      names = ["mixer_self", "mixer_memory"] + [f"decoder_memory_{i}" for i in range(hp.num_decoder_blocks)]
      for name in names:
        self.attentions[name] = Attention(d, h, hp.attention_dropout, name=f"{name}_attention")
        self.residuals[name] = _Residual(dropout, name=f"{name}_residual")
    if hp.use_moe:
      self.moe = _moe(hp, "moe")
      self.moe_residual = _Residual(dropout, name="moe_residual")

  def build(self, *unused_shapes):
    """Sublayers build on their first call (the mixer's attention also from `Memory.build`)."""
    self.built = True

  def memory_attentions(self) -> dict:
    return {n: a for n, a in self.attentions.items() if n != "mixer_self"}

  def _attend_memory(self, name, y, state, training):
    out = self.attentions[name].attend(y, state[f"{name}/keys"], state[f"{name}/values"],
                                       state["bias"], training)
    return self.residuals[name](y, out, training=training)

  def _after_self_attention(self, y, state, training):
    if self.use_attention:
      y = self._attend_memory("mixer_memory", y, state, training)
    else:
      y = y + state["pooled"]                                              # [B, T, D]
    return y

  def _decoder_layer(self, i, y, state, training):
    if self.use_attention:
      y = self._attend_memory(f"decoder_memory_{i}", y, state, training)
    if self.use_moe and i == self.moe_after:
      y = self.moe_residual(y, self.moe(y, training=training), training=training)
    return y

  def call(self, y, state, training=False):
    """y [B, T, D]: the embedded command token and targets[:, :-1]; returns [B, T, D]."""
    length = tf.shape(y)[1]
    if self.use_attention:
      x = y + timing_signal(length, y.shape[-1])[None]
      out = self.attentions["mixer_self"](x, x, causal_bias(length), training=training)
      y = self.residuals["mixer_self"](y, out, training=training)
    y = self._after_self_attention(y, state, training)
    for block in self.mixer_blocks:
      y = block(y, training=training)
    for i, block in enumerate(self.decoder_blocks):
      y = self._decoder_layer(i, block(y, training=training), state, training)
    return y

  def init_cache(self, batch_size, max_length: int) -> dict:
    d, h = self.hp.hidden_size, self.hp.num_heads
    cache = {"convs": [b.init_cache(batch_size) for b in self.mixer_blocks + self.decoder_blocks]}
    if self.use_attention:
      cache["keys"] = tf.zeros([batch_size, h, max_length, d // h])         # [B, H, L, D/H]
      cache["values"] = tf.zeros([batch_size, h, max_length, d // h])
    return cache

  def step(self, y, step, state, cache):
    """One target position y [B, 1, D] at index `step`; returns [B, 1, D] and the new cache."""
    cache = dict(cache)
    if self.use_attention:
      attention = self.attentions["mixer_self"]
      x = y + timing_signal(1, y.shape[-1], start=step)[None]
      keys, values = attention.project_memory(x)                           # [B, H, 1, D/H] each
      max_length = cache["keys"].shape[2] or tf.shape(cache["keys"])[2]
      at_step = tf.one_hot(step, max_length)[None, None, :, None]          # [1, 1, L, 1]
      cache["keys"] = cache["keys"] * (1.0 - at_step) + keys * at_step
      cache["values"] = cache["values"] * (1.0 - at_step) + values * at_step
      bias = (1.0 - tf.cast(tf.range(max_length) <= step, tf.float32)) * -1e9  # [L]
      out = attention.attend(x, cache["keys"], cache["values"], bias[None, None, None, :])
      y = self.residuals["mixer_self"](y, out)
    y = self._after_self_attention(y, state, False)
    convs = []
    blocks = self.mixer_blocks + self.decoder_blocks
    for j, block in enumerate(blocks):
      y, buffers = block.step(y, cache["convs"][j])
      convs.append(buffers)
      i = j - len(self.mixer_blocks)
      if i >= 0:
        y = self._decoder_layer(i, y, state, False)
    cache["convs"] = convs
    return y, cache
