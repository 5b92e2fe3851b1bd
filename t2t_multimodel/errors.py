"""The marker of a user's mistake: the CLIs print these as one line with exit code 2, no traceback."""


class UserError(Exception):
  """Base of every error caused by a user's input (names, flags, data), not by a bug."""


class MissingDataError(UserError, RuntimeError):
  """A full-data problem whose data set is not where it should be."""
