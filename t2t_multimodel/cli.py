"""The one runner of the CLIs under bin/: flags, --helpshort, user mistakes, TensorFlow's chatter.

Every CLI is a thin absl main that ends in `cli.run("mm-x", main)`, and so behaves the same:
  - a bad flag (unknown, a value out of its range or enum) is `mm-x: error: <one line>`, exit 2;
  - a user's mistake raised by `main` (USER_ERRORS) is the same one line with exit code 2;
  - --helpshort (and --help) print the CLI's docstring and its own flags.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import types
from typing import Callable, NoReturn

from t2t_multimodel.errors import UserError

# Errors that are the user's mistake, not a bug: no traceback for these.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, FileNotFoundError, NotADirectoryError)


class UsageError(UserError, ValueError):
  """A bad flag combination, reported as one line."""


def run(program: str, main: Callable[[], int | None]) -> None:
  """Runs the CLI `program`: parses the flags, then calls `main()` under absl's app.run.

  `main` takes no arguments (no CLI takes positional ones; they are ignored) and returns None or
  an exit code. The flags are parsed before TensorFlow loads, so --helpshort and a bad flag answer
  at once. TensorFlow is loaded (quietly) before app.run installs absl's logging handler: its
  logger configures itself by whether the root logger has handlers when it first logs.
  """
  from absl import app

  _describe_as_main_module(sys.modules[main.__module__])
  app.define_help_flags()  # --help, --helpshort, --helpfull: app.run would define them on parsing
  remaining = parse_flags(program, sys.argv)
  quiet_tensorflow()

  def main_with_user_errors(argv: list[str]) -> int | None:
    del argv
    with user_errors(program):
      return main()

  # The flags are parsed already: app.run's flags_parser only hands the remaining arguments on.
  app.run(main_with_user_errors, argv=remaining, flags_parser=lambda argv: argv)


def _describe_as_main_module(module: types.ModuleType) -> None:
  """Makes absl's --helpshort describe the CLI `module`: its docstring and its flags.

  absl's usage() prints the docstring of `__main__` and `FLAGS.main_module_help()`: the key flags
  of the module named `sys.argv[0]`, the name absl gives to flags defined in `__main__`. A console
  script's `__main__` is pip's wrapper, which imports the CLI's module: its flags are registered
  under the module's own name, so --helpshort listed none. Declaring them key to the main module
  too, with FlagValues' public `register_key_flag_for_module` (what `flags.adopt_module_key_flags`
  does for the calling module, which here would be this one), fixes that without renaming
  modules or rewriting sys.argv. Under `python -m` the flags are key to `sys.argv[0]` already.
  """
  from absl import flags

  for flag in flags.FLAGS.get_key_flags_for_module(module):
    flags.FLAGS.register_key_flag_for_module(sys.argv[0], flag)
  sys.modules["__main__"].__doc__ = module.__doc__


def parse_flags(program: str, argv: list[str]) -> list[str]:
  """absl's `FLAGS(argv)`: the arguments left. A bad flag (unknown, a value out of its range or
  enum) is reported as `program: error: <one line>` with exit code 2."""
  from absl import flags

  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    _fail(program, e)


@contextlib.contextmanager
def user_errors(program: str):
  """Turns USER_ERRORS (UserError and its subclasses, missing files) into `program: error: <one line>` and exit code 2."""
  try:
    yield
  except USER_ERRORS as e:
    _fail(program, e)


def _fail(program: str, error: BaseException) -> NoReturn:
  message = " ".join(str(error).split()) or type(error).__name__
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


def require(flag_value, name: str) -> None:
  if not flag_value:
    raise UsageError(f"--{name} is required.")
