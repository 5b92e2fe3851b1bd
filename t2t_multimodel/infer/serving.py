"""Loading a trained run for inference, and exporting it as a self-contained SavedModel.

Everything comes from the run's output_dir (hparams.json, problems.json, the checkpoints): the
decoder never needs the training flags repeated (T2T #672). The vocabulary is the run's own copy
(`O/vocab.mm8k.model`) or else the data dir's, checked against the hash the run was trained with.
"""

from __future__ import annotations

import os
import sys

import tensorflow as tf

from t2t_multimodel.data import inputs
from t2t_multimodel.errors import UserError
from t2t_multimodel.hparams.base import HParams
from t2t_multimodel.infer import decoding
from t2t_multimodel.model.multimodel import MODELS
from t2t_multimodel.problems import PROBLEMS
from t2t_multimodel.registry import UnknownNameError
from t2t_multimodel.run import run_dir
from t2t_multimodel.vocab import EOS_ID, SubwordVocab, VOCAB_FILENAME


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


def load_decoder(output_dir: str, problem: str, checkpoint_path: str | None = None, beam_size: int = 1,
                 alpha: float = 0.6, max_length: int | None = None) -> decoding.Decoder:
  """A Decoder for one problem of the run in `output_dir`."""
  model, hparams, record = load_model(output_dir, checkpoint_path)
  trained = [p["name"] for p in record["problems"]]
  if problem not in trained:
    raise UnknownNameError(f"Run {output_dir} was not trained on {problem!r}. Its problems: {', '.join(trained)}")
  return decoding.Decoder(model, PROBLEMS.get(problem), hparams, run_vocab(output_dir, record),
                          beam_size=beam_size, alpha=alpha, max_length=max_length)


class TextServer(tf.Module):
  """strings [N] -> strings [N] for a text-to-text problem: tokenisation, incremental decoding and
  detokenisation all inside the graph (tensorflow-text's SentencePiece ops).

  `tokenize` feeds the model exactly what mm-decoder feeds it (decoding.prepare_inputs): the
  SentencePiece ids, one EOS, the training pipeline's own input preprocessing
  (inputs.layouts(...)["inputs"].preprocess, traced here), zero-padded to a multiple of its
  length step. Empty or all-space lines give empty outputs, as in mm-decoder.

  Example:
    >>> server = TextServer(model, "translate_ende_bible", hp, vocab, beam_size=4, alpha=0.6, max_length=64)
    >>> server.serve(tf.constant(["In the beginning"]))["outputs"]
  """

  def __init__(self, model, problem: str, hparams: HParams, vocab: SubwordVocab, beam_size: int,
               alpha: float, max_length: int):
    super().__init__()
    import tensorflow_text as tft  # its ops must be registered to save and to load
    self.model = model
    self.tokenizer = tft.SentencepieceTokenizer(model=vocab.model_proto)  # no EOS: added once below
    self._layout = inputs.layouts(PROBLEMS.get(problem), hparams)["inputs"]
    self._problem = problem
    self._beam_size, self._alpha, self._max_length = beam_size, alpha, max_length

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
  def tokenize(self, lines):
    """strings [N] -> {"ids": the model's input, int32 [N, T]}, as decoding.prepare_inputs makes it."""
    ids = tf.cast(self.tokenizer.tokenize(lines), tf.int32)                 # ragged [N, (T)]
    eos = tf.fill([tf.shape(lines)[0], 1], EOS_ID)                          # [N, 1]
    ids = tf.concat([ids, eos], axis=1)                                     # ragged [N, (T + 1)]
    ids = tf.map_fn(self._layout.preprocess, ids,
                    fn_output_signature=tf.RaggedTensorSpec([None], tf.int32, ragged_rank=0))
    dense = ids.to_tensor(0)                                                # [N, T']
    multiple = self._layout.multiple
    pad = (multiple - tf.shape(dense)[1] % multiple) % multiple
    return {"ids": tf.pad(dense, [[0, 0], [0, pad]])}                       # [N, T'' = k * multiple]

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
  def serve(self, lines):
    dense = self.tokenize(lines)["ids"]                                     # [N, T]
    out = decoding.decode_ids(self.model, self._problem, dense, self._max_length,
                              self._beam_size, self._alpha)                 # [N, L]
    keep = tf.logical_and(out > 1, out < tf.cast(self.tokenizer.vocab_size(), tf.int32))
    outputs = self.tokenizer.detokenize(tf.ragged.boolean_mask(out, keep))  # [N]
    empty = tf.equal(tf.strings.length(tf.strings.strip(lines)), 0)
    return {"outputs": tf.where(empty, "", outputs)}


def export(output_dir: str, problem: str, export_dir: str, checkpoint_path: str | None = None,
           beam_size: int = 1, alpha: float = 0.6, max_length: int | None = None) -> str:
  """Writes a SavedModel whose `serving_default` maps `inputs` (string [N]) to `outputs`.

  Its `tokenize` signature maps the same `inputs` to `ids`, the batch the model is fed.
  """
  decoder = load_decoder(output_dir, problem, checkpoint_path, beam_size, alpha, max_length)
  if decoder.problem.input_modality != "symbol" or decoder.problem.target_modality != "symbol":
    raise UserError(f"mm-export serves text-to-text problems; {problem} is "
                    f"{decoder.problem.input_modality} -> {decoder.problem.target_modality}.")
  server = TextServer(decoder.model, problem, decoder.hparams, decoder.vocab, beam_size, alpha,
                      decoder.max_length)
  tf.saved_model.save(server, export_dir,
                      signatures={"serving_default": server.serve, "tokenize": server.tokenize})
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
