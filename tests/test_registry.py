"""The typed registry: explicit names, duplicates rejected, unknown names listed."""

import pytest

from t2t_multimodel.registry import DuplicateNameError, Registry, UnknownNameError


def test_add_get_and_listing():
  reg = Registry("widget")
  reg.add("beta", 2)
  reg.add("alpha", 1)
  assert reg.get("alpha") == 1
  assert reg.names() == ["alpha", "beta"]
  assert "beta" in reg and "gamma" not in reg
  assert len(reg) == 2


def test_decorator_registers():
  reg = Registry("widget")

  @reg.register("fn")
  def fn():
    return 3

  assert reg.get("fn")() == 3


def test_duplicate_is_an_error():
  reg = Registry("widget")
  reg.add("a", 1)
  with pytest.raises(DuplicateNameError, match="widget 'a' is already registered"):
    reg.add("a", 2)


def test_unknown_lists_known_and_closest():
  reg = Registry("problem")
  reg.add("translate_ende_bible", 1)
  reg.add("image_digits", 2)
  with pytest.raises(UnknownNameError) as info:
    reg.get("translate_ende_bibel")
  message = str(info.value)
  assert "Did you mean 'translate_ende_bible'?" in message
  assert "image_digits, translate_ende_bible" in message
  assert isinstance(info.value, KeyError)
  assert "\n" not in message


def test_bad_name_rejected():
  with pytest.raises(ValueError, match="non-empty str"):
    Registry("widget").add("", 1)
