"""The shared body of the MultiModel (the paper's section 2): encoder, I/O mixer and decoder.

  encoder: ConvBlocks with a mixture of experts after the middle one     [B, S, D] -> [B, S, D]
  mixer:   an AttentionBlock (causal self-attention, attention to the encoded inputs), then
           causal ConvBlocks                                             [B, T, D] -> [B, T, D]
  decoder: blocks of (causal ConvBlock, AttentionBlock), a mixture of experts after the middle
           one; causal                                                    [B, T, D] -> [B, T, D]

Every AttentionBlock and MoE output joins the stream as LayerNorm(x + Dropout(f(x))), as in T2T.
`use_moe=False` removes the MoE layers (nothing replaces them). `use_attention=False` removes the
attention blocks (the paper's Table 4 ablation); the target side then sees the inputs only
through their masked mean over positions, added where the mixer's attention block was.

`TargetSide` given a `cache` computes one target position through the same `call` as training,
equal to the full computation at that position.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.layers.attention import AttentionBlock, padding_bias
from t2t_multimodel.layers.conv import apply_mask, build_once, ConvBlock, SERIALIZABLE
from t2t_multimodel.layers.moe import MixtureOfExperts
from t2t_multimodel.layers.tracking import CheckpointedCollections


@SERIALIZABLE
class ResidualNorm(CheckpointedCollections, keras.layers.Layer):
  """(x, f(x)) -> LayerNorm(x + Dropout(f(x))): how attention and MoE outputs join the stream.

  Args:
    dropout: the dropout rate on f(x).

  Example:
    >>> ResidualNorm(0.1)(tf.ones([2, 5, 8]), tf.zeros([2, 5, 8])).shape
    TensorShape([2, 5, 8])
  """

  def __init__(self, dropout: float = 0.0, **kwargs):
    super().__init__(**kwargs)
    self.dropout_rate = dropout
    self.dropout = keras.layers.Dropout(dropout)
    self.norm = keras.layers.LayerNormalization(epsilon=1e-6, name="norm")

  def build(self, x_shape, *unused_shapes):
    build_once(self.norm, x_shape)

  def call(self, x, fx, training=False):
    return self.norm(x + self.dropout(fx, training=training))

  def get_config(self):
    return {**super().get_config(), "dropout": self.dropout_rate}


def _moe(hp: HParams) -> MixtureOfExperts:
  return MixtureOfExperts(hp.num_experts, hp.moe_k, hp.filter_size, noise_eps=hp.moe_noise_eps,
                          loss_coef=hp.moe_loss_coef, dispatch=hp.moe_dispatch,
                          capacity_factor=hp.moe_capacity_factor, name="moe")


def _hp(hparams: HParams | dict) -> HParams:
  return hparams if isinstance(hparams, HParams) else HParams.from_dict(hparams)


@SERIALIZABLE
class Encoder(CheckpointedCollections, keras.layers.Layer):
  """hp.num_encoder_blocks ConvBlocks with a MoE layer after block (n - 1) // 2 (6: 3 + MoE + 3).

  Args:
    hparams: HParams (or its dict): hidden_size, num_encoder_blocks, large_kernel_size, dropout,
      use_moe and the moe_* sizes.

  Example:
    >>> encoder = Encoder(multimodel_tiny())
    >>> encoder(tf.ones([2, 7, 64]), padding_mask=tf.ones([2, 7], tf.bool)).shape
    TensorShape([2, 7, 64])
  """

  def __init__(self, hparams: HParams | dict, **kwargs):
    super().__init__(**kwargs)
    hp = self.hp = _hp(hparams)
    self.middle = (hp.num_encoder_blocks - 1) // 2
    self.blocks = [ConvBlock(hp.hidden_size, hp.large_kernel_size, hp.dropout, name=f"block_{i}")
                   for i in range(hp.num_encoder_blocks)]
    if hp.use_moe:
      self.moe, self.moe_residual = _moe(hp), ResidualNorm(hp.dropout, name="moe_residual")

  def build(self, input_shape):
    """Sublayers build on the first call."""

  def call(self, x, padding_mask=None, training=False):
    mask = padding_mask                                                    # [B, S] or None
    for i, block in enumerate(self.blocks):
      x = block(x, padding_mask=mask, training=training)                   # [B, S, D]
      if self.hp.use_moe and i == self.middle:
        moe = self.moe(x, mask=mask, training=training)
        x = apply_mask(self.moe_residual(x, moe, training=training), mask)
    return x

  def get_config(self):
    return {**super().get_config(), "hparams": self.hp.__dict__}


@SERIALIZABLE
class TargetSide(CheckpointedCollections, keras.layers.Layer):
  """The I/O mixer and the decoder: every layer that reads the shifted targets; all causal.

  Args:
    hparams: HParams (or its dict).

  Example:
    >>> side = TargetSide(multimodel_tiny())
    >>> state = side.memory(encoded, input_mask)        # once per input
    >>> side(shifted_targets, state).shape              # [B, T, D]
  """

  def __init__(self, hparams: HParams | dict, **kwargs):
    super().__init__(**kwargs)
    hp = self.hp = _hp(hparams)
    d, dropout = hp.hidden_size, hp.dropout
    self.moe_after = (hp.num_decoder_blocks - 1) // 2
    block = lambda name: ConvBlock(d, hp.large_kernel_size, dropout, causal=True, name=name)
    self.mixer_blocks = [block(f"mixer_block_{i}") for i in range(hp.num_mixer_blocks)]
    self.decoder_blocks = [block(f"decoder_block_{i}") for i in range(hp.num_decoder_blocks)]
    self.attentions, self.residuals = {}, {}
    if hp.use_attention:
      for name in ["mixer"] + [f"decoder_{i}" for i in range(hp.num_decoder_blocks)]:
        self.attentions[name] = AttentionBlock(d, hp.num_heads, dropout, hp.attention_dropout,
                                               name=f"{name}_attention")
        self.residuals[name] = ResidualNorm(dropout, name=f"{name}_attention_residual")
    if hp.use_moe:
      self.moe, self.moe_residual = _moe(hp), ResidualNorm(dropout, name="moe_residual")

  def build(self, input_shape, *unused_shapes):
    """Sublayers build on the first call (the attention blocks also from `memory`)."""

  def memory(self, encoded, mask) -> dict:
    """encoded [B, S, D], mask [B, S] -> what the target side reads of the inputs, computed once.

    A dict of batch-major tensors (beam search tiles them): "encoded", "mask", "pooled" [B, 1, D]
    (their masked mean), "bias" [B, 1, 1, S] and each attention block's "<name>/keys" and
    "<name>/values" [B, H, S, D/H].
    """
    weights = tf.cast(mask, encoded.dtype)[:, :, None]                     # [B, S, 1]
    pooled = tf.reduce_sum(encoded * weights, 1, keepdims=True) / tf.maximum(
        tf.reduce_sum(weights, 1, keepdims=True), 1.0)                     # [B, 1, D]
    state = {"encoded": encoded, "mask": mask, "pooled": pooled,
             "bias": padding_bias(mask)}                                   # bias: [B, 1, 1, S]
    for name, block in self.attentions.items():
      state[f"{name}/keys"], state[f"{name}/values"] = block.project_memory(encoded)
    return state

  def _attend(self, name, y, state, training, cache, position):
    """The residual around attention block `name`; with a cache, updates cache["attention"]."""
    args = (y, state[f"{name}/keys"], state[f"{name}/values"], state["bias"])
    if cache is None:
      out = self.attentions[name](*args, training=training)
    else:
      out, cache["attention"][name] = self.attentions[name](
          *args, training=training, cache=cache["attention"][name], position=position)
    return self.residuals[name](y, out, training=training)

  def call(self, y, state, padding_mask=None, training=False, cache=None, position=None):
    """y [B, T, D]: the embedded command token and targets[:, :-1]; returns [B, T, D].

    padding_mask [B, T] (optional) marks the real decoder inputs (the command, then targets up to
    the last real one): it only keeps padding out of the MoE's balancing loss (causality already
    keeps padding from real positions). A position whose input is real is never masked.

    Incremental decoding: with `cache` (from `init_cache`) and `position` (int32 scalar), y is the
    one position [B, 1, D] at that index, and the result is ([B, 1, D], the updated cache).
    """
    if cache is not None:
      cache = {"convs": list(cache["convs"]), "attention": dict(cache["attention"])}
    if self.hp.use_attention:
      y = self._attend("mixer", y, state, training, cache, position)
    else:
      y = y + state["pooled"]                                              # [B, T, D]
    for j, block in enumerate(self.mixer_blocks + self.decoder_blocks):
      if cache is None:
        y = block(y, training=training)
      else:
        y, cache["convs"][j] = block(y, training=training, cache=cache["convs"][j])
      i = j - len(self.mixer_blocks)
      if i < 0:
        continue
      if self.hp.use_attention:
        y = self._attend(f"decoder_{i}", y, state, training, cache, position)
      if self.hp.use_moe and i == self.moe_after:
        y = self.moe_residual(y, self.moe(y, mask=padding_mask, training=training), training=training)
    return y if cache is None else (y, cache)

  def init_cache(self, batch_size, max_length: int, dtype="float32") -> dict:
    """Zero conv buffers of every causal ConvStep and the attention blocks' self-attention K/V."""
    blocks = self.mixer_blocks + self.decoder_blocks
    return {"convs": [b.init_cache(batch_size, dtype) for b in blocks],
            "attention": {n: a.init_cache(batch_size, max_length, dtype)
                          for n, a in self.attentions.items()}}

  def get_config(self):
    return {**super().get_config(), "hparams": self.hp.__dict__}
