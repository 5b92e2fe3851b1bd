"""Loading a trained run for inference, and exporting it as a self-contained SavedModel.

Everything comes from the run's output_dir (hparams.json, problems.json, the checkpoints): the
decoder never needs the training flags repeated (T2T #672). The vocabulary is the run's own copy
(`O/vocab.mm8k.model`) or else the data dir's, checked against the hash the run was trained with.
"""

from __future__ import annotations

import os
import sys

import tensorflow as tf

from t2t_multimodel import infer, modalities
from t2t_multimodel.data import inputs
from t2t_multimodel.errors import UserError
from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.infer import decoding
from t2t_multimodel.model.multimodel import MODELS
from t2t_multimodel.problem import Problem
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.registry import UnknownNameError
from t2t_multimodel.run import run_dir
from t2t_multimodel.vocab import SubwordVocab, VOCAB_FILENAME


class CheckpointError(UserError, FileNotFoundError):
  """A run without a checkpoint, or a --checkpoint_path that does not exist."""


def run_vocab(output_dir: str, record: dict) -> SubwordVocab | None:
  """The vocabulary the run was trained with, or None for a run without text."""
  expected = record.get("vocab_sha256")
  if not expected:
    return None
  for path in (os.path.join(output_dir, VOCAB_FILENAME), os.path.join(record["data_dir"], VOCAB_FILENAME)):
    if os.path.exists(path):
      vocab = SubwordVocab(path)
      if vocab.sha256 != expected:
        raise UserError(f"The vocabulary {path} is not the one run {output_dir} was trained with.")
      return vocab
  raise UserError(f"No vocabulary for run {output_dir}: neither {output_dir}/{VOCAB_FILENAME} nor "
                  f"{record['data_dir']}/{VOCAB_FILENAME} exists.")


def load_model(output_dir: str, checkpoint_path: str | None = None):
  """(model with restored weights, hparams, problems record) of the run in `output_dir`."""
  hparams, record = run_dir.load_run(output_dir)
  model = MODELS.get(hparams.model)(hparams, record["problems"])
  model.build_all()
  path = checkpoint_path or tf.train.latest_checkpoint(os.path.join(output_dir, run_dir.CHECKPOINT_DIR))
  if not path:
    raise CheckpointError(f"No checkpoint in {output_dir}/{run_dir.CHECKPOINT_DIR}: train first.")
  if not tf.io.gfile.exists(path + ".index"):
    raise CheckpointError(f"No checkpoint at {path}.")
  tf.train.Checkpoint(model=model).restore(path).expect_partial().assert_existing_objects_matched()
  return model, hparams, record


def load_decoder(output_dir: str, problem: str, checkpoint_path: str | None = None,
                 beam_size: int = infer.BEAM_SIZE, alpha: float = infer.ALPHA,
                 max_length: int | None = None) -> decoding.Decoder:
  """A Decoder for one problem of the run in `output_dir`."""
  model, hparams, record = load_model(output_dir, checkpoint_path)
  trained = [p["name"] for p in record["problems"]]
  if problem not in trained:
    raise UnknownNameError(f"Run {output_dir} was not trained on {problem!r}. Its problems: {', '.join(trained)}")
  return decoding.Decoder(model, PROBLEMS.get(problem), hparams, run_vocab(output_dir, record),
                          beam_size=beam_size, alpha=alpha, max_length=max_length)


class ProblemServer(tf.Module):
  """strings [N] -> strings [N] for one problem, everything inside the graph: reading what a client
  has (text, or the bytes of an image or a WAV file: `Modality.serve`), the training pipeline's
  own preprocessing (`inputs.layouts`), incremental decoding or classification, and the output
  text (`Modality.serve_text`; tensorflow-text's SentencePiece ops for text).

  `prepare` feeds the model exactly what mm-decoder feeds it (decoding.prepare_inputs), zero-padded
  to a multiple of the length step. Empty inputs (or all-space lines) give empty outputs, as in
  mm-decoder; they are never decoded.

  Example:
    >>> server = ProblemServer(model, PROBLEMS.get("translate_ende_bible"), hp, vocab, 4, 0.6, 64)
    >>> server.serve(tf.constant(["In the beginning"]))["outputs"]
  """

  def __init__(self, model, problem: Problem, hparams: HParams, vocab: SubwordVocab | None,
               beam_size: int, alpha: float, max_length: int):
    super().__init__()
    self.model, self._problem = model, problem
    self.tokenizer = None
    if vocab is not None:
      import tensorflow_text as tft  # its ops must be registered to save and to load
      self.tokenizer = tft.SentencepieceTokenizer(model=vocab.model_proto)  # no EOS: `serve` adds it
    self._inputs, self._targets = modalities.of(problem, "inputs"), modalities.of(problem, "targets")
    self._layout = inputs.layouts(problem, hparams)["inputs"]
    self._beam_size, self._alpha, self._max_length = beam_size, alpha, max_length
    placeholder = self._inputs.dummy(hparams, 1, "inputs")[0]            # stands in for empty inputs
    self._placeholder = tf.constant(self._layout.preprocess(placeholder))

  def _empty(self, raw):
    return tf.equal(tf.strings.length(tf.strings.strip(raw) if self._inputs.text else raw), 0)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
  def prepare(self, raw):
    """strings [N] -> {"inputs": the model's input batch [N, ...], "empty": bool [N]}."""
    empty = self._empty(raw)

    def one(args):
      value, is_empty = args
      return tf.cond(is_empty, lambda: self._placeholder,
                     lambda: self._layout.preprocess(self._inputs.serve(value, self.tokenizer)))

    if self._layout.multiple is None:                                       # fixed shape: images
      batch = tf.map_fn(one, (raw, empty), fn_output_signature=self._placeholder.dtype)
      return {"inputs": batch, "empty": empty}                                  # [N, ...]
    spec = tf.RaggedTensorSpec([None] + self._placeholder.shape[1:].as_list(),
                               self._placeholder.dtype, ragged_rank=0)
    values = tf.map_fn(one, (raw, empty), fn_output_signature=spec)             # ragged [N, (T), ...]
    dense = values.to_tensor(0)                                                 # [N, T', ...]
    multiple = self._layout.multiple
    pad = (multiple - tf.shape(dense)[1] % multiple) % multiple
    paddings = [[0, 0], [0, pad]] + [[0, 0]] * (len(self._placeholder.shape) - 1)
    return {"inputs": tf.pad(dense, paddings), "empty": empty}                  # [N, k * multiple, ...]

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
  def serve(self, raw):
    prepared = self.prepare(raw)
    batch = prepared["inputs"]
    if self._targets.autoregressive:
      out = decoding.decode_ids(self.model, self._problem.name, batch, self._max_length,
                                self._beam_size, self._alpha)                   # [N, L]
    else:
      out = decoding.classify(self.model, self._problem.name, batch)            # [N]
    texts = self._targets.serve_text(out, self.tokenizer, self._problem.class_names)
    return {"outputs": tf.where(prepared["empty"], "", texts)}                  # [N]


def export(output_dir: str, problem: str, export_dir: str, checkpoint_path: str | None = None,
           beam_size: int = infer.BEAM_SIZE, alpha: float = infer.ALPHA,
           max_length: int | None = None) -> str:
  """Writes a SavedModel whose `serving_default` maps `inputs` (string [N]: text lines, or the
  bytes of image or WAV files) to `outputs` (string [N]).

  Its `prepare` signature maps the same `inputs` to `inputs` (the batch the model is fed) and
  `empty`.
  """
  decoder = load_decoder(output_dir, problem, checkpoint_path, beam_size, alpha, max_length)
  source = modalities.of(decoder.problem, "inputs")
  if not source.client:
    raise UserError(f"{problem}'s {source.name} inputs cannot be served: its modality has no `serve`.")
  server = ProblemServer(decoder.model, decoder.problem, decoder.hparams, decoder.vocab, beam_size,
                         alpha, decoder.max_length)
  tf.saved_model.save(server, export_dir,
                      signatures={"serving_default": server.serve, "prepare": server.prepare})
  return export_dir


def one_line(text: str) -> str:
  """`text` with every line break (\\n, \\r, \\x0b, \\x85, \\u2028, ...) made a space."""
  return " ".join(text.splitlines())


def decode_file(decoder: decoding.Decoder, lines: list[str], out, batch_size: int = 32) -> None:
  """Decodes `lines` in batches (with a progress bar) and writes one output line per input line."""
  from tqdm import tqdm
  with tqdm(total=len(lines), unit=" lines", file=sys.stderr, disable=len(lines) < batch_size) as bar:
    for start in range(0, len(lines), batch_size):
      batch = lines[start:start + batch_size]
      for output in decoder.decode(batch):
        out.write(one_line(output) + "\n")
      out.flush()
      bar.update(len(batch))


def decode_stream(decoder: decoding.Decoder, stream, out, interactive: bool) -> None:
  """One output line per input line, flushed as it goes; a prompt when interactive."""
  prompt = f"{decoder.problem.name}> " if interactive else ""
  while True:
    if prompt:
      out.write(prompt)
      out.flush()
    line = stream.readline()
    if not line:
      break
    out.write(one_line(decoder.decode([line.rstrip("\n")])[0]) + "\n")
    out.flush()
