"""Modalities: how each kind of value (text, images, audio, labels) is stored, batched, enters and
leaves the shared body, and is read and shown (see base.py). One module per modality; adding one
is a module with a `Modality` subclass and one line here (README, "Adding a modality")."""

from __future__ import annotations

from t2t_multimodel.modalities.audio import AUDIO
from t2t_multimodel.modalities.base import Layout, Modality
from t2t_multimodel.modalities.class_label import CLASS_LABEL
from t2t_multimodel.modalities.image import IMAGE
from t2t_multimodel.modalities.symbol import SYMBOL
from t2t_multimodel.registry import Registry

MODALITIES: Registry[Modality] = Registry("modality")
for _modality in (SYMBOL, IMAGE, AUDIO, CLASS_LABEL):
  MODALITIES.add(_modality.name, _modality)

ROLES = {"inputs": "input_modality", "targets": "target_modality"}


def of(problem, role: str) -> Modality:
  """The Modality of `problem`'s `role` ("inputs" or "targets"); `problem` is a Problem or its
  signature dict."""
  name = problem[ROLES[role]] if isinstance(problem, dict) else getattr(problem, ROLES[role])
  return MODALITIES.get(name)


__all__ = ["Layout", "MODALITIES", "Modality", "ROLES", "of"]
