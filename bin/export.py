"""mm-export: a SavedModel of a trained run for one problem, of any modality.

  mm-export --output_dir=runs/demo --problem=translate_ende_bible --export_dir=exported/ende
Its `serving_default` signature takes `inputs` (string [N]: lines of text, or the bytes of image
files (PNG, JPEG, GIF, BMP; any size) or of 16-bit PCM WAV files (any rate, mono or stereo)) and
returns `outputs` (string [N]: a translation, a tree, a caption, a label, a transcript). Reading,
resizing, resampling, log-mel features, tokenisation and decoding run inside the graph. Load it
with tf.saved_model.load after `import tensorflow_text` (for the SentencePiece ops); this package
is not needed.
"""

from __future__ import annotations

from absl import flags

from t2t_multimodel import cli, infer

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "The mm-trainer run to export.")
flags.DEFINE_string("problem", None, "The problem to serve (one the run was trained on).")
flags.DEFINE_string("export_dir", None, "Where the SavedModel is written.")
flags.DEFINE_string("checkpoint_path", None, "A checkpoint (default: the run's latest).")
infer.define_decoding_flags(__name__)


def main():
  for flag in ("output_dir", "problem", "export_dir"):
    cli.require(getattr(FLAGS, flag), flag)
  from t2t_multimodel.infer import serving
  path = serving.export(FLAGS.output_dir, FLAGS.problem, FLAGS.export_dir, FLAGS.checkpoint_path,
                        FLAGS.beam_size, FLAGS.alpha, FLAGS.max_length or None)
  print(f"SavedModel written to {path}")


def run():
  cli.run("mm-export", main)


if __name__ == "__main__":
  run()
