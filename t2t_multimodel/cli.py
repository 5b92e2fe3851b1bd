"""Shared plumbing of the three thin CLIs: user mistakes become one line and exit code 2."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

from t2t_multimodel.errors import UserError

# Errors that are the user's mistake, not a bug: no traceback for these.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError, NotADirectoryError)


class UsageError(UserError, ValueError):
  """A bad flag combination, reported as one line."""


@contextlib.contextmanager
def user_errors(program: str):
  """Turns USER_ERRORS (UserError and its subclasses, missing files) into `program: error: <one line>` and exit code 2."""
  try:
    yield
  except USER_ERRORS as e:
    message = " ".join(str(e).split()) or type(e).__name__
    print(f"{program}: error: {message}", file=sys.stderr)
    sys.exit(2)


def quiet_tensorflow() -> None:
  """Keeps TensorFlow's C++ start-up chatter (CUDA probing on a CPU machine) off the terminal.

  The messages printed while TensorFlow loads come before its logging is configured, so stderr is
  pointed at /dev/null for the import alone; later C++ logs are cut to errors by the level.
  """
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  logging.getLogger("tensorflow").setLevel(logging.ERROR)
  saved = os.dup(2)
  try:
    with open(os.devnull, "w") as devnull:
      os.dup2(devnull.fileno(), 2)
      import tensorflow  # noqa: F401  (loaded here, quietly, once)
  finally:
    os.dup2(saved, 2)
    os.close(saved)


def flags_parser(program: str):
  """absl's flag parser for `app.run(..., flags_parser=...)`, with a bad flag (unknown, a value out
  of its range or enum) reported as `program: error: <one line>` and exit code 2."""
  def parse(argv: list[str]) -> list[str]:
    from absl import flags
    try:
      return flags.FLAGS(argv)
    except flags.Error as e:
      print(f"{program}: error: {e}", file=sys.stderr)
      sys.exit(2)

  return parse


def require(flag_value, name: str) -> None:
  if not flag_value:
    raise UsageError(f"--{name} is required.")
