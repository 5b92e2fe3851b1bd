"""mm-serve's engine: a local web page, and JSON endpoints beside it, to try a trained run.

  GET  /                 the page (one HTML file with its script; no outside assets: works offline)
  GET  /api/problems     {"problems": [{"name", "command", "input", "accept", "describe"}],
                          "max_upload_bytes", "max_text_chars"}
  POST /api/decode       {"problem": name, "text": "..."} or {"problem": name, "data": base64 bytes}
                         -> 200 {"output": "...", "seconds": decode time}
                         or 4xx {"error": "one line"}; the server keeps serving

Every problem is served by the graph that mm-export saves (`serving.ProblemServer`), built on
first use from the one model of the run: text, or the bytes of an image or a WAV file, in; a
string out. Bad input (not an image, an empty file, a file over the upload limit, text over the
length limit, an unknown problem) is a one-line message, never a dropped connection or a stack
trace. Binds to 127.0.0.1 unless told otherwise: the page has no authentication.
"""

from __future__ import annotations

import base64
import binascii
import http.server
import json
import logging
import os
import threading
import time

import tensorflow as tf

from t2t_multimodel import infer, modalities
from t2t_multimodel.errors import UserError
from t2t_multimodel.infer import serving
from t2t_multimodel.problems import PROBLEMS

MAX_UPLOAD_BYTES = 10 * 2 ** 20   # a file's bytes; its base64 in the request is 4/3 of that
MAX_TEXT_CHARS = 2_000
PAGE = os.path.join(os.path.dirname(__file__), "static", "index.html")


class BadInput(UserError, ValueError):
  """A request the page answers with a one-line message (HTTP `status`)."""

  def __init__(self, message: str, status: int = 400):
    super().__init__(message)
    self.status = status


class Service:
  """One run's model and a `ProblemServer` per problem, made on first use; thread-safe.

  Example:
    >>> service = Service("runs/train")
    >>> service.decode({"problem": "translate_ende_bible", "text": "In the beginning"})
    {'output': 'Im Anfang ...', 'seconds': 0.41}
  """

  def __init__(self, output_dir: str, beam_size: int = infer.BEAM_SIZE, alpha: float = infer.ALPHA,
               max_length: int | None = None, checkpoint_path: str | None = None):
    self.model, self.hparams, record = serving.load_model(output_dir, checkpoint_path)
    self.vocab = serving.run_vocab(output_dir, record)
    self.names = [p["name"] for p in record["problems"]]
    self.beam_size, self.alpha = beam_size, alpha
    self.max_length = max_length or self.hparams.max_target_length
    self._servers: dict[str, serving.ProblemServer] = {}
    self._lock = threading.Lock()

  def problems(self) -> dict:
    """The content of /api/problems."""
    described = []
    for name in self.names:
      problem, source = PROBLEMS.get(name), modalities.of(PROBLEMS.get(name), "inputs")
      described.append({"name": name, "command": problem.command.display_name,
                        "input": source.client, "accept": source.accept,
                        "describe": source.client_description})
    return {"problems": described, "max_upload_bytes": MAX_UPLOAD_BYTES,
            "max_text_chars": MAX_TEXT_CHARS}

  def decode(self, request: dict) -> dict:
    """A /api/decode request -> {"output", "seconds"}; BadInput for anything it cannot serve."""
    name = request.get("problem")
    if name not in self.names:
      raise BadInput(f"Unknown problem {name!r}. This run serves: {', '.join(self.names)}", 404)
    source = modalities.of(PROBLEMS.get(name), "inputs")
    payload = self._payload(request, source)
    with self._lock:  # one model: one decode at a time
      server = self._server(name)
      start = time.perf_counter()
      try:
        output = server.serve(tf.constant([payload]))["outputs"].numpy()[0].decode("utf-8")
      except tf.errors.InvalidArgumentError as error:
        logging.info("Unreadable input for %s: %s", name, error.message.splitlines()[0])
        raise BadInput(f"{name} could not read this input: it expects {source.client_description}.")
      seconds = time.perf_counter() - start
    return {"output": output, "seconds": round(seconds, 3)}

  def _payload(self, request: dict, source) -> bytes:
    if source.client == "text":
      text = request.get("text")
      if not isinstance(text, str) or not text.strip():
        raise BadInput("Nothing to decode: type some text.")
      if len(text) > MAX_TEXT_CHARS:
        raise BadInput(f"The text has {len(text):,} characters; the most is {MAX_TEXT_CHARS:,}.", 413)
      return text.encode("utf-8")
    data = request.get("data")
    if not isinstance(data, str):
      raise BadInput(f"No file: upload {source.client_description}.")
    try:
      raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
      raise BadInput("The upload is not valid base64.") from None
    if not raw:
      raise BadInput(f"The file is empty: upload {source.client_description}.")
    if len(raw) > MAX_UPLOAD_BYTES:
      raise BadInput(too_large(len(raw)), 413)
    return raw

  def _server(self, name: str) -> serving.ProblemServer:
    if name not in self._servers:
      self._servers[name] = serving.ProblemServer(
          self.model, PROBLEMS.get(name), self.hparams, self.vocab, self.beam_size, self.alpha,
          self.max_length)
    return self._servers[name]


def too_large(size: int) -> str:
  return (f"The file is {size / 2 ** 20:.1f} MB; the most mm-serve takes is "
          f"{MAX_UPLOAD_BYTES / 2 ** 20:.0f} MB.")


def handler(service: Service) -> type[http.server.BaseHTTPRequestHandler]:
  """The request handler class of a server for `service`."""
  # The largest /api/decode body: a file at the limit in base64, and its JSON around it.
  max_body = MAX_UPLOAD_BYTES * 4 // 3 + 4096

  class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "mm-serve"

    def do_GET(self):
      if self.path in ("/", "/index.html"):
        with open(PAGE, "rb") as f:
          self._send(200, f.read(), "text/html; charset=utf-8")
      elif self.path == "/api/problems":
        self._json(200, service.problems())
      else:
        self._json(404, {"error": f"No page {self.path}"})

    def do_POST(self):
      if self.path != "/api/decode":
        self._json(404, {"error": f"No endpoint {self.path}"})
        return
      length = int(self.headers.get("Content-Length") or 0)
      if length > max_body:  # answered before reading: the connection closes after it
        self.close_connection = True
        self._json(413, {"error": too_large(length * 3 // 4)})
        return
      try:
        request = json.loads(self.rfile.read(length) or b"{}")
        if not isinstance(request, dict):
          raise BadInput("Expected a JSON object.")
        self._json(200, service.decode(request))
      except json.JSONDecodeError:
        self._json(400, {"error": "The request is not JSON."})
      except BadInput as error:
        self._json(error.status, {"error": str(error)})
      except Exception as error:  # a bug: say so in one line, keep serving
        logging.exception("Decoding failed")
        self._json(500, {"error": f"Decoding failed: {type(error).__name__}: {error}".splitlines()[0]})

    def _json(self, status: int, content: dict):
      self._send(status, json.dumps(content).encode("utf-8"), "application/json")

    def _send(self, status: int, body: bytes, content_type: str):
      self.send_response(status)
      self.send_header("Content-Type", content_type)
      self.send_header("Content-Length", str(len(body)))
      self.end_headers()
      self.wfile.write(body)

    def log_message(self, format, *args):  # absl's log, not stderr lines of their own
      logging.info("%s %s", self.address_string(), format % args)

  return Handler


def make_server(service: Service, host: str = "127.0.0.1", port: int = 8080) -> http.server.HTTPServer:
  """A threading HTTP server for `service` (port 0: any free port; see `server_address`)."""
  return http.server.ThreadingHTTPServer((host, port), handler(service))
