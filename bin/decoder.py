"""mm-decoder: decodes with a trained run; everything but the problem comes from --output_dir.

  mm-decoder --output_dir=runs/demo --problem=translate_ende_bible              # interactive
  echo "In the beginning" | mm-decoder --output_dir=runs/demo --problem=...     # one line per line
  mm-decoder ... --decode_from_file=in.txt --decode_to_file=out.txt [--beam_size=1 for greedy]
Image and audio problems read one file path per input line.
"""

from __future__ import annotations

import sys

from absl import flags

from t2t_multimodel import cli, infer

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "The mm-trainer run to decode with.")
flags.DEFINE_string("problem", None, "The problem to decode (one of the run's).")
flags.DEFINE_string("checkpoint_path", None, "A checkpoint (default: the run's latest).")
flags.DEFINE_string("decode_from_file", None, "Input lines (text, or image/WAV paths).")
flags.DEFINE_string("decode_to_file", None, "Where to write the outputs (default: stdout).")
infer.define_decoding_flags(__name__)
flags.DEFINE_integer("batch_size", 32, "Lines decoded together from a file.", lower_bound=1)


def main():
  cli.require(FLAGS.output_dir, "output_dir")
  cli.require(FLAGS.problem, "problem")
  from t2t_multimodel.infer import serving  # after flag checks: fast errors and --help
  decoder = serving.load_decoder(FLAGS.output_dir, FLAGS.problem, FLAGS.checkpoint_path,
                                 FLAGS.beam_size, FLAGS.alpha, FLAGS.max_length or None)
  if FLAGS.decode_from_file:
    with open(FLAGS.decode_from_file, encoding="utf-8") as f:
      lines = f.read().splitlines()
    if FLAGS.decode_to_file:
      with open(FLAGS.decode_to_file, "w", encoding="utf-8") as out:
        serving.decode_file(decoder, lines, out, FLAGS.batch_size)
    else:
      serving.decode_file(decoder, lines, sys.stdout, FLAGS.batch_size)
  else:
    serving.decode_stream(decoder, sys.stdin, sys.stdout, interactive=sys.stdin.isatty())


def run():
  cli.run("mm-decoder", main)


if __name__ == "__main__":
  run()
