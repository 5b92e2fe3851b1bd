"""Sizing the keras-hub peer (peer_transformer.py) to a parameter count: its depth and FFN width.

A pre-LN keras-hub Transformer layer's trainable count is linear in its intermediate_dim, so two
builds per side give the line; the embeddings, positions and softmax are counted in closed form.
"""

from __future__ import annotations

import math

import keras
import keras_hub
import numpy as np

from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.model.multimodel import MultiModel
from t2t_multimodel.problems import get_problem

PROBLEM = "translate_ende_bible"
FFN_RATIO = 4                   # the standard Transformer's intermediate_dim / hidden_size
MAX_LAYERS = 12                 # the deepest peer tried, per side
PARAM_TOLERANCE = 0.10          # |peer - target| / target


def padded(length: int, hp: HParams) -> int:
  """The longest padded length axis of a role cut at `length` (buckets of length_bucket_step)."""
  return -(-length // hp.length_bucket_step) * hp.length_bucket_step


def _layer_params(decoder: bool, hp: HParams, intermediate_dim: int) -> int:
  """Trainable parameters of one pre-LN keras-hub Transformer layer of width hp.hidden_size."""
  shape = (None, None, hp.hidden_size)
  if decoder:
    layer = keras_hub.layers.TransformerDecoder(intermediate_dim, hp.num_heads, normalize_first=True)
    layer.build(shape, shape)
  else:
    layer = keras_hub.layers.TransformerEncoder(intermediate_dim, hp.num_heads, normalize_first=True)
    layer.build(shape)
  return sum(int(np.prod(v.shape)) for v in layer.trainable_weights)


def _linear_fit(decoder: bool, hp: HParams) -> tuple[int, int]:
  """(params at intermediate_dim 0, params per intermediate unit) of one layer: linear in it."""
  one, two = _layer_params(decoder, hp, 1), _layer_params(decoder, hp, 2)
  return one - (two - one), two - one


def _fixed_params(hp: HParams) -> int:
  """Embedding V*D, positions (S + T)*D, softmax D*V + V, two final LayerNorms 2 * 2D."""
  d, v = hp.hidden_size, hp.vocab_size
  positions = padded(hp.max_input_length, hp) + padded(hp.max_target_length, hp)
  return v * d + positions * d + d * v + v + 4 * d


def peer_hparams_for(target_params: int, hp: HParams, *, num_layers: int | None = None) -> dict:
  """The peer's sizes: hp's width, heads and dropout, its depth and FFN chosen to match a count.

  Every depth N (N encoder and N decoder layers, 1..MAX_LAYERS) gets the intermediate_dim that
  brings the trainable count closest to `target_params`; the depth kept is the one whose
  intermediate_dim is closest (in ratio) to the standard FFN_RATIO * hidden_size, unless
  `num_layers` pins it.

  Returns:
    {"vocab_size", "hidden_size", "num_heads", "intermediate_dim", "num_encoder_layers",
     "num_decoder_layers", "max_input_length", "max_target_length", "dropout", "params"}:
    the PeerTransformer's arguments and its predicted trainable parameter count.

  Raises:
    ValueError: no depth lands within PARAM_TOLERANCE of `target_params`.
  """
  fixed = _fixed_params(hp)
  (enc_base, enc_slope), (dec_base, dec_slope) = _linear_fit(False, hp), _linear_fit(True, hp)
  depths = [num_layers] if num_layers else range(1, MAX_LAYERS + 1)
  candidates = []
  for n in depths:
    ffn = round((target_params - fixed - n * (enc_base + dec_base)) / (n * (enc_slope + dec_slope)))
    if ffn >= 1:
      params = fixed + n * (enc_base + dec_base + ffn * (enc_slope + dec_slope))
      candidates.append((abs(math.log(ffn / (FFN_RATIO * hp.hidden_size))), n, ffn, params))
  if not candidates:
    raise ValueError(f"Expected `target_params` above the peer's embeddings and attention. "
                     f"Received: target_params={target_params}, num_layers={num_layers}")
  _, n, ffn, params = min(candidates)
  if abs(params - target_params) > PARAM_TOLERANCE * target_params:
    raise ValueError(f"Expected a peer within {PARAM_TOLERANCE:.0%} of target_params. Received: "
                     f"target_params={target_params}, best peer params={params}")
  return {"vocab_size": hp.vocab_size, "hidden_size": hp.hidden_size, "num_heads": hp.num_heads,
          "intermediate_dim": ffn, "num_encoder_layers": n, "num_decoder_layers": n,
          "max_input_length": padded(hp.max_input_length, hp),
          "max_target_length": padded(hp.max_target_length, hp), "dropout": hp.dropout,
          "params": params}


def trainable_params(model: keras.Model) -> int:
  return sum(int(np.prod(v.shape)) for v in model.trainable_variables)


def multimodel_params(hp: HParams, problem: str = PROBLEM) -> int:
  """Our MultiModel's trainable parameter count when built for `problem` alone."""
  model = MultiModel(hp, [get_problem(problem).signature()])
  model.build_all()
  return trainable_params(model)
