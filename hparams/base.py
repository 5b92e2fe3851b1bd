"""The typed, frozen hyperparameters of a MultiModel run and their overrides.

Named sets (see `multimodel.py`) derive from `HParams()` with
`dataclasses.replace`. `apply_overrides(hp, "k=v,k2=v2")` parses the
`--hparams` flag once: values are Python literals, checked against the field's
type; unknown keys and wrong types are errors, never ignored (T2T #546, #589).
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import json
import typing

from t2t_multimodel.errors import UserError


class HParamsError(UserError, ValueError):
  """A bad hparam name, value or combination."""


# MixtureOfExperts' DISPATCH_MODES (not imported: the hparams load without TensorFlow).
MOE_DISPATCH_MODES = ("auto", "loop", "padded", "capacity")


@dataclasses.dataclass(frozen=True)
class HParams:
  """Every knob of the model, the optimiser and the input pipeline."""

  model: str = "multimodel"
  # Body sizes.
  hidden_size: int = 512            # d: width of the shared body.
  filter_size: int = 2048           # hidden width of each MoE expert / dense FFN.
  num_heads: int = 8
  num_encoder_blocks: int = 6       # ConvBlocks in the encoder (MoE in the middle).
  num_mixer_blocks: int = 2         # ConvBlocks in the I/O mixer.
  num_decoder_blocks: int = 4       # conv + attention blocks in the decoder.
  large_kernel_size: int = 15
  # Blocks that can be switched off (the paper's Table 4).
  use_moe: bool = True
  use_attention: bool = True
  # Sparsely-gated mixture of experts (Shazeer et al. 2017).
  num_experts: int = 16
  moe_k: int = 2
  moe_loss_coef: float = 1e-2
  moe_noise_eps: float = 1e-2
  # How the experts run (MixtureOfExperts' `dispatch`): "auto", "loop" and "padded" are dropless
  # (same results); "capacity" gives each expert ceil(k * N / E * moe_capacity_factor) rows, N the
  # call's tokens with padding, and drops the assignments past them (GShard / Switch Transformer;
  # compiles with XLA).
  moe_dispatch: str = "auto"
  moe_capacity_factor: float = 1.25  # "capacity" only.
  # Modality nets.
  vocab_size: int = 8192            # the shared subword vocabulary.
  image_size: int = 32              # images are resized to image_size x image_size.
  audio_blocks: int = 8             # ConvRes blocks of the audio modality.
  audio_time_strides: int = 2       # how many of them halve the time axis.
  # Per-utterance mean and variance normalisation of each mel bin over the utterance's frames
  # (T2T's speech bottom does the same). False is the raw log-mel of runs made before it existed;
  # every named set turns it on.
  audio_normalize: bool = False
  # The weight of an auxiliary CTC loss on the encoder output of problems with audio inputs,
  # through the targets' own softmax with PAD as the blank (model/ctc.py; Watanabe et al. 2017's
  # hybrid CTC/attention): the encoder learns where each token is spoken from the first steps.
  # Training only; train_log.jsonl shows it in "aux_loss", apart from the cross-entropy. 0: off.
  audio_ctc_weight: float = 0.0
  # Regularisation.
  dropout: float = 0.1
  attention_dropout: float = 0.1
  label_smoothing: float = 0.1
  # Optimiser: Adam, clipping by global norm. The rate warms up linearly to its peak, then decays
  # as 1/sqrt(step): lr(step) = learning_rate * min(step / warmup, sqrt(warmup / step)), step >= 1
  # (optimization.WarmupRsqrtSchedule). Unlike T2T's noam, no hidden_size**-0.5 factor: what you set is
  # what the optimiser gets at its peak.
  learning_rate: float = 7e-4       # the PEAK learning rate, reached at step learning_rate_warmup_steps.
  learning_rate_warmup_steps: int = 4000
  adam_beta1: float = 0.9
  adam_beta2: float = 0.997
  adam_epsilon: float = 1e-9
  # Adam's bias correction counts each variable's own updates (optimization.OwnStepAdam). With one
  # problem per step, a problem's top and bottom see a gradient only on its steps; Keras's Adam
  # corrects by the global step, so such a variable's first updates are ~2-4x the learning rate
  # (m^/sqrt(v^) ~ (1 - b1**n) / sqrt(1 - b2**n) after its n-th update). False is Keras's Adam,
  # that of runs made before it existed; their checkpoints have no per-variable counts.
  adam_own_steps: bool = False
  clip_grad_norm: float = 1.0
  # Input pipeline.
  batch_size: int = 64              # examples per batch (each batch holds one problem).
  batch_tokens: int = 0             # > 0: batches of about this many body positions instead
                                    # (batch_tokens // a length bucket's positions examples).
  eval_batch_size: int = 64         # examples per evaluation / decoding batch.
  max_input_length: int = 256       # tokens or spectrogram frames/4; longer is cut.
  max_target_length: int = 128
  length_bucket_step: int = 16      # lengths are padded up to a multiple of this.
  # Precision: float16 compute with float32 variables, logits, losses and MoE gates, and dynamic
  # loss scaling (optimization.py), for the trainer's model; mm-evaluate, mm-decoder and mm-export
  # build float32 models from its checkpoints.
  mixed_precision: bool = False

  def validate(self) -> "HParams":
    """Raises HParamsError on impossible combinations; returns self."""
    checks = [
        (self.hidden_size > 0, f"Expected `hidden_size` > 0. Received: hidden_size={self.hidden_size}"),
        (self.hidden_size % self.num_heads == 0,
         f"Expected `hidden_size` divisible by `num_heads`. Received: hidden_size={self.hidden_size}, "
         f"num_heads={self.num_heads}"),
        (self.moe_k >= 1, f"Expected `moe_k` >= 1. Received: moe_k={self.moe_k}"),
        (self.num_experts >= self.moe_k,
         f"Expected `num_experts` >= `moe_k`. Received: num_experts={self.num_experts}, moe_k={self.moe_k}"),
        (self.moe_dispatch in MOE_DISPATCH_MODES,
         f"Expected `moe_dispatch` in {MOE_DISPATCH_MODES}. Received: moe_dispatch={self.moe_dispatch!r}"),
        (self.moe_capacity_factor > 0,
         f"Expected `moe_capacity_factor` > 0. Received: moe_capacity_factor={self.moe_capacity_factor}"),
        (0.0 <= self.dropout < 1.0, f"Expected 0 <= `dropout` < 1. Received: dropout={self.dropout}"),
        (0.0 <= self.attention_dropout < 1.0,
         f"Expected 0 <= `attention_dropout` < 1. Received: attention_dropout={self.attention_dropout}"),
        (0.0 <= self.label_smoothing < 1.0,
         f"Expected 0 <= `label_smoothing` < 1. Received: label_smoothing={self.label_smoothing}"),
        (self.learning_rate > 0, f"Expected `learning_rate` > 0. Received: learning_rate={self.learning_rate}"),
        (self.batch_size >= 1, f"Expected `batch_size` >= 1. Received: batch_size={self.batch_size}"),
        (self.batch_tokens >= 0, f"Expected `batch_tokens` >= 0. Received: batch_tokens={self.batch_tokens}"),
        (self.learning_rate_warmup_steps >= 1,
         f"Expected `learning_rate_warmup_steps` >= 1. Received: learning_rate_warmup_steps="
         f"{self.learning_rate_warmup_steps}"),
        (self.eval_batch_size >= 1,
         f"Expected `eval_batch_size` >= 1. Received: eval_batch_size={self.eval_batch_size}"),
        (self.clip_grad_norm >= 0, f"Expected `clip_grad_norm` >= 0. Received: clip_grad_norm={self.clip_grad_norm}"),
        (0 <= self.audio_time_strides <= self.audio_blocks,
         f"Expected 0 <= `audio_time_strides` <= `audio_blocks`. Received: audio_time_strides="
         f"{self.audio_time_strides}, audio_blocks={self.audio_blocks}"),
        (self.audio_ctc_weight >= 0,
         f"Expected `audio_ctc_weight` >= 0. Received: audio_ctc_weight={self.audio_ctc_weight}"),
        (self.num_encoder_blocks >= 1 and self.num_decoder_blocks >= 1,
         f"Expected at least one encoder and one decoder block. Received: num_encoder_blocks="
         f"{self.num_encoder_blocks}, num_decoder_blocks={self.num_decoder_blocks}"),
        (self.max_input_length >= 1 and self.max_target_length >= 2,
         f"Expected `max_input_length` >= 1 and `max_target_length` >= 2. Received: "
         f"{self.max_input_length}, {self.max_target_length}"),
    ]
    for ok, message in checks:
      if not ok:
        raise HParamsError(message)
    return self

  def to_json(self) -> str:
    return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, values: dict) -> "HParams":
    """Builds HParams from a dict (e.g. a run's hparams.json), type-checked."""
    hp = cls()
    for key, value in values.items():
      hp = _replace_checked(hp, key, value)
    return hp.validate()


def field_types() -> dict[str, type]:
  hints = typing.get_type_hints(HParams)
  return {f.name: hints[f.name] for f in dataclasses.fields(HParams)}


def _replace_checked(hp: HParams, key: str, value) -> HParams:
  types = field_types()
  if key not in types:
    close = difflib.get_close_matches(key, types, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise HParamsError(f"Unknown hparam {key!r}.{hint} Known hparams: {', '.join(sorted(types))}")
  expected = types[key]
  if expected is float and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  if type(value) is not expected:
    raise HParamsError(
        f"Wrong type for hparam {key!r}: expected {expected.__name__}, "
        f"got {type(value).__name__} ({value!r}).")
  return dataclasses.replace(hp, **{key: value})


def parse_overrides(text: str) -> dict[str, object]:
  """Parses 'k=v,k2=v2' into a dict of Python literals.

  Values are literals (`ast.literal_eval`); a bare word such as `multimodel`
  is taken as a string. Commas inside quotes are allowed.
  """
  result: dict[str, object] = {}
  for item in _split_top_level(text):
    if not item.strip():
      continue
    if "=" not in item:
      raise HParamsError(f"Malformed hparams override {item.strip()!r}: expected key=value.")
    key, raw = (part.strip() for part in item.split("=", 1))
    if not key:
      raise HParamsError(f"Malformed hparams override {item.strip()!r}: empty key.")
    if key in result:
      raise HParamsError(f"Hparam {key!r} is overridden twice.")
    try:
      value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
      if raw.replace("_", "").isalnum() and not raw[:1].isdigit():
        value = raw  # a bare word: a string
      else:
        raise HParamsError(f"Cannot parse the value of hparam {key!r}: {raw!r}.") from None
    if raw in ("true", "false"):
      value = raw == "true"
    result[key] = value
  return result


def apply_overrides(hp: HParams, text: str) -> HParams:
  """Returns hp with the overrides of `text` applied and validated."""
  for key, value in parse_overrides(text).items():
    hp = _replace_checked(hp, key, value)
  return hp.validate()


def _split_top_level(text: str) -> list[str]:
  items, current, quote = [], [], None
  for ch in text:
    if quote:
      if ch == quote:
        quote = None
    elif ch in "'\"":
      quote = ch
    elif ch == ",":
      items.append("".join(current))
      current = []
      continue
    current.append(ch)
  items.append("".join(current))
  return items
