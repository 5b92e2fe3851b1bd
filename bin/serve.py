"""mm-serve: a local web page to try a trained run, with JSON endpoints beside it.

  mm-serve --output_dir=runs/train [--port=8080] [--host=127.0.0.1]
Open the printed address: pick a problem, type text or upload an image or a WAV file (or record
from the microphone where the browser allows), and see the output and the decode time.
  curl -s localhost:8080/api/problems
  curl -s localhost:8080/api/decode -d '{"problem": "translate_ende_bible", "text": "In the beginning"}'
Files go as base64 in "data". Each problem is served by the graph mm-export saves.
"""

from __future__ import annotations

from absl import flags

from t2t_multimodel import cli, infer

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", None, "The mm-trainer run to serve.")
flags.DEFINE_string("host", "127.0.0.1", "The address to bind (the page has no authentication).")
flags.DEFINE_integer("port", 8080, "The port (0: any free one).", lower_bound=0, upper_bound=65535)
flags.DEFINE_string("checkpoint_path", None, "A checkpoint (default: the run's latest).")
infer.define_decoding_flags(__name__)


def main():
  cli.require(FLAGS.output_dir, "output_dir")
  from t2t_multimodel.infer import web  # after flag checks: fast errors and --help
  service = web.Service(FLAGS.output_dir, FLAGS.beam_size, FLAGS.alpha, FLAGS.max_length or None,
                        FLAGS.checkpoint_path)
  server = web.make_server(service, FLAGS.host, FLAGS.port)
  host, port = server.server_address[:2]
  print(f"Serving {FLAGS.output_dir} on http://{host}:{port}/ (Ctrl-C stops)", flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()


def run():
  cli.run("mm-serve", main)


if __name__ == "__main__":
  run()
