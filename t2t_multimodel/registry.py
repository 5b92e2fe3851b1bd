"""A small typed registry with explicit names (after seqio's TaskRegistry).

Problems, mixtures, hparam sets, models and modalities each live in one
`Registry`. Adding a name twice is an error; looking up an unknown name raises
`UnknownNameError` (a `KeyError`) that lists the known names and the closest one.
"""

from __future__ import annotations

import difflib
from typing import Callable, Generic, Iterator, TypeVar

from t2t_multimodel.errors import UserError

T = TypeVar("T")


class UnknownNameError(UserError, KeyError):
  """An unknown registry name; the message lists the known names."""

  def __str__(self) -> str:  # KeyError would repr() the message.
    return str(self.args[0])


class DuplicateNameError(ValueError):
  """A name registered twice."""


class Registry(Generic[T]):
  """Maps explicit names to objects of one kind.

  Args:
    kind: what the registry holds, used in error messages ("problem").

  Example:
    >>> models = Registry("model")
    >>> models.add("multimodel", MultiModel)
    >>> models.get("multimodel")
  """

  def __init__(self, kind: str):
    self.kind = kind
    self._items: dict[str, T] = {}

  def add(self, name: str, value: T) -> T:
    if not name or not isinstance(name, str):
      raise ValueError(f"Expected a non-empty str name for a {self.kind}. Received: {name!r}")
    if name in self._items:
      raise DuplicateNameError(f"{self.kind} {name!r} is already registered.")
    self._items[name] = value
    return value

  def register(self, name: str) -> Callable[[T], T]:
    """Decorator form of `add`."""
    def decorator(value: T) -> T:
      return self.add(name, value)
    return decorator

  def get(self, name: str) -> T:
    try:
      return self._items[name]
    except KeyError:
      raise UnknownNameError(self.unknown_message(name)) from None

  def unknown_message(self, name: str) -> str:
    known = ", ".join(sorted(self._items)) or "(none)"
    close = difflib.get_close_matches(name, self._items, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    kinds = self.kind[:-1] + "ies" if self.kind.endswith("y") else self.kind + "s"
    return f"Unknown {self.kind} {name!r}.{hint} Known {kinds}: {known}"

  def names(self) -> list[str]:
    return sorted(self._items)

  def items(self) -> list[tuple[str, T]]:
    return sorted(self._items.items())

  def __contains__(self, name: object) -> bool:
    return name in self._items

  def __iter__(self) -> Iterator[str]:
    return iter(self.names())

  def __len__(self) -> int:
    return len(self._items)
