"""The MultiModel (Kaiser et al. 2017): modality nets around one shared encoder, I/O mixer and
decoder, with a command token telling the model what to produce. One model, one set of weights,
every problem.

  inputs --modality bottom--> [B, S, D] + command --encoder--> encoded [B, S, D]
  class-label targets: encoded --exit flow--> logits [B, C]
  text targets: [command, y_0 .. y_{T-2}] --shared symbol embedding--> mixer + decoder (attending
                to encoded) --linear--> logits [B, T, V]
  audio inputs, training, audio_ctc_weight > 0: encoded --the same linear--> an auxiliary CTC loss
                (model/ctc.py), added with add_loss

The command token (a learned embedding of the problem's CommandToken, 8 values with padding 0)
is the decoder's first input position, as in the paper; it is also added to every encoder input
position, so that the encoder knows the task too (a class-label problem has no decoder).

Keras plumbing: `call(features, problem=...)` takes the problem's name as a Python keyword; the
model builds its weights per problem on first use, or all at once with `build_all()`, which
`summary()` and loading a saved `.keras` file need (it runs one tiny batch of every problem;
`build_from_config` calls it, so `keras.models.load_model` needs no other help).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from t2t_multimodel import modalities
from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.layers.conv import SERIALIZABLE
from t2t_multimodel.layers.tracking import CheckpointedCollections
from t2t_multimodel.model import ctc
from t2t_multimodel.model.body import Encoder, TargetSide
from t2t_multimodel.problem import NUM_COMMAND_TOKENS
from t2t_multimodel.registry import Registry
from t2t_multimodel.vocab import PAD_ID

MODELS: Registry = Registry("model")


def dummy_features(problem: dict, hp: HParams, batch_size: int = 1) -> dict:
  """A batch of small all-valid examples of a problem's modalities, to create every weight."""
  return {role: modalities.of(problem, role).dummy(hp, batch_size, role) for role in modalities.ROLES}


@SERIALIZABLE
class MultiModel(CheckpointedCollections, keras.Model):
  """One model for every problem of a run.

  Args:
    hparams: an HParams or its dict (as in hparams.json).
    problems: the problems' signatures (`Problem.signature()`: name, input_modality,
      target_modality, command, num_classes).

  Example:
    >>> model = MultiModel(multimodel_tiny(), [PROBLEMS.get("translate_ende_bible").signature()])
    >>> logits = model({"inputs": ids, "targets": target_ids}, problem="translate_ende_bible")
    >>> loss, weight = model.problem_loss("translate_ende_bible", features, logits)
  """

  def __init__(self, hparams: HParams | dict, problems: list[dict], **kwargs):
    super().__init__(**kwargs)
    self.hp = (hparams if isinstance(hparams, HParams) else HParams.from_dict(hparams)).validate()
    if not problems:
      raise ValueError("Expected at least one problem signature. Received: problems=[]")
    self.problems = {p["name"]: dict(p) for p in problems}
    self.modality_nets = {}
    for problem in self.problems.values():
      source = modalities.of(problem, "inputs")
      for role in modalities.ROLES:
        modality = modalities.of(problem, role)
        key = modality.net_key(problem, source)
        if key not in self.modality_nets:
          self.modality_nets[key] = modality.net(self.hp, problem, source)
    self.command_embedding = keras.layers.Embedding(NUM_COMMAND_TOKENS, self.hp.hidden_size,
                                                    name="command_embedding")
    self.encoder = Encoder(self.hp, name="encoder")
    if any(modalities.of(p, "targets").autoregressive for p in self.problems.values()):
      self.target_side = TargetSide(self.hp, name="target_side")

  # --- Pieces shared by training and decoding. ---------------------------------------------------

  def _signature(self, problem: str) -> dict:
    try:
      return self.problems[problem]
    except KeyError:
      raise KeyError(f"Unknown problem {problem!r} for this model. Known problems: "
                     f"{', '.join(sorted(self.problems))}") from None

  def _net(self, problem: str, role: str):
    """The modality net of `problem`'s `role` ("inputs" or "targets")."""
    signature = self._signature(problem)
    source = modalities.of(signature, "inputs")
    return self.modality_nets[modalities.of(signature, role).net_key(signature, source)]

  def moe_layers(self) -> list:
    """The body's mixture-of-experts layers (none with use_moe=False)."""
    sides = [self.encoder] + ([self.target_side] if hasattr(self, "target_side") else [])
    return [side.moe for side in sides if hasattr(side, "moe")]

  def _autoregressive(self, problem: str) -> bool:
    return modalities.of(self._signature(problem), "targets").autoregressive

  def _ctc_weight(self, problem: str) -> float:
    """The weight of the auxiliary CTC loss (model/ctc.py) on `problem`'s encoder output: the
    hparam for inputs in time order (audio: `Modality.timed`) with token-by-token targets, else 0."""
    if not modalities.of(self._signature(problem), "inputs").timed:
      return 0.0
    return self.hp.audio_ctc_weight if self._autoregressive(problem) else 0.0

  def _command(self, problem: str, batch_size) -> tf.Tensor:
    ids = tf.fill([batch_size, 1], self._signature(problem)["command"])
    return self.command_embedding(ids)                                     # [B, 1, D]

  def _encode(self, inputs, problem: str, training: bool):
    x, mask, grid = self._net(problem, "inputs").bottom(inputs, training=training)  # [B, S, D]
    x = x + tf.cast(self._command(problem, tf.shape(x)[0]), x.dtype)       # the task, for the encoder
    return self.encoder(x, padding_mask=mask, training=training), mask, grid

  def call(self, features, problem: str = "", training: bool = False):
    encoded, mask, grid = self._encode(features["inputs"], problem, training)
    top = self._net(problem, "targets")
    if not self._autoregressive(problem):
      return top.top(encoded, mask=mask, grid=grid)                        # [B, C]
    targets = features["targets"]                                          # [B, T]
    ctc_weight = self._ctc_weight(problem) if training else 0.0
    if ctc_weight:
      self.add_loss(ctc_weight * ctc.ctc_loss(top.top(encoded), mask, targets))
    command = tf.cast(self._command(problem, tf.shape(targets)[0]), encoded.dtype)
    shifted = tf.concat([command, top.embed(targets[:, :-1])], axis=1)     # [B, T, D]
    real = tf.not_equal(targets[:, :-1], PAD_ID)                           # [B, T - 1]
    real = tf.concat([tf.ones_like(real[:, :1]), real], axis=1)            # [B, T] real inputs
    state = self.target_side.memory(encoded, mask)
    body = self.target_side(shifted, state, padding_mask=real, training=training)
    return top.top(body)                                                   # [B, T, V]

  def problem_loss(self, problem: str, features, logits):
    """(mean label-smoothed cross-entropy over non-padding targets, their count as float)."""
    top = self._net(problem, "targets")
    return top.loss(logits, features["targets"], self.hp.label_smoothing)

  # --- Incremental decoding (text targets). ------------------------------------------------------

  def encode(self, features, problem: str) -> dict:
    """Encodes the inputs once: a dict of batch-major tensors for `decode_step`."""
    if not self._autoregressive(problem):
      raise ValueError(f"Expected a problem with token-by-token targets for incremental decoding. "
                       f"Received: problem={problem!r} with "
                       f"{self._signature(problem)['target_modality']} targets (use call()).")
    encoded, mask, _ = self._encode(features["inputs"], problem, training=False)
    return self.target_side.memory(encoded, mask)

  def init_cache(self, state: dict, max_length: int) -> dict:
    """Fixed-size zero buffers for `max_length` steps: causal conv inputs, self-attention K/V."""
    pooled = state["pooled"]                                               # [B, 1, D]
    return self.target_side.init_cache(tf.shape(pooled)[0], max_length, pooled.dtype)

  def decode_step(self, state, cache, prev_ids, step, problem: str):
    """Logits [B, V] of target position `step`; prev_ids [B] is the token at step - 1."""
    top = self._net(problem, "targets")
    batch_size = tf.shape(prev_ids)[0]
    token = top.embed(tf.maximum(prev_ids, 0)[:, None])                    # [B, 1, D]
    command = tf.cast(self._command(problem, batch_size), token.dtype)     # [B, 1, D]
    y = tf.where(tf.equal(step, 0), command, token)
    y, cache = self.target_side(y, state, cache=cache, position=step)       # [B, 1, D]
    return top.top(y)[:, 0], cache                                         # [B, V]

  # --- Keras plumbing. ---------------------------------------------------------------------------

  def build(self, *unused_shapes):
    """Weights are created per problem on the first call (or all at once by `build_all`)."""

  def build_all(self) -> None:
    """Creates every weight by running one tiny batch of each problem; marks the nets built."""
    for name, problem in self.problems.items():
      self(dummy_features(problem, self.hp), problem=name, training=False)
    for net in self.modality_nets.values():
      net.built = True  # modality nets are used through bottom/top, never called themselves

  def get_config(self):
    return {**super().get_config(), "hparams": dict(self.hp.__dict__),
            "problems": [dict(p) for p in self.problems.values()]}

  def get_build_config(self):
    return {"problems": sorted(self.problems)}

  def build_from_config(self, config):
    self.build_all()


MODELS.add("multimodel", MultiModel)
