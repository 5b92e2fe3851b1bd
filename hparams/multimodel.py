"""Named hparam sets of the MultiModel, derived from `HParams()` with `dataclasses.replace`."""

from __future__ import annotations

import dataclasses

from t2t_multimodel.hparams.base import HParams


def multimodel_base() -> HParams:
  """T2T's multimodel_base: d=512, filter 2048, dropout 0.1, noam-style schedule."""
  return HParams()


def multimodel_paper() -> HParams:
  """The paper's joint 8-problem setting: d=1024, 240 experts (k=4), 40% conv dropout."""
  return dataclasses.replace(
      multimodel_base(),
      hidden_size=1024,
      filter_size=4096,
      num_heads=16,
      num_experts=240,
      moe_k=4,
      dropout=0.4,
      image_size=224,
  )


def multimodel_tiny() -> HParams:
  """Small enough to train jointly on mm8_mini on 2 CPU cores in minutes."""
  return dataclasses.replace(
      multimodel_base(),
      hidden_size=64,
      filter_size=128,
      num_heads=4,
      num_encoder_blocks=2,
      num_mixer_blocks=1,
      num_decoder_blocks=2,
      large_kernel_size=7,
      num_experts=4,
      moe_k=2,
      audio_blocks=4,
      audio_time_strides=3,  # 96 * 8 = 768 frames: 99% of speech_espeak whole.
      image_size=16,
      dropout=0.1,
      attention_dropout=0.0,
      learning_rate=0.2,
      learning_rate_warmup_steps=200,
      batch_size=16,
      max_input_length=96,    # 99% of Bible verses whole.
      max_target_length=128,  # every Bible verse; the median parse_trees tree (p90: 201 tokens).
      length_bucket_step=8,
  )
