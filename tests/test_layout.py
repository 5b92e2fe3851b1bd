"""The house rules of the package layout (README, Layout): folders follow the data flow, imports
point only up that flow (to an earlier stage), there are no import cycles, and modules stay small."""

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The installed namespace: folder in the repository -> package name.
SOURCES = {"t2t_multimodel": "t2t_multimodel", "problems": "t2t_multimodel.problems",
           "hparams": "t2t_multimodel.hparams", "bin": "t2t_multimodel.bin"}
# The stages of the data flow, earliest first; a module may import from its own stage or an earlier one.
FLOW = ["errors", "registry", "vocab", "cli", "hparams", "layers", "modalities", "problem", "data", "problems",
        "model", "run", "infer", "evaluate", "train", "paper", "bin"]


def _modules() -> dict[str, str]:
  """Module name -> file path, for every module of the installed namespace."""
  found = {}
  for folder, package in SOURCES.items():
    for directory, _, files in os.walk(os.path.join(ROOT, folder)):
      for name in files:
        if name.endswith(".py"):
          relative = os.path.relpath(os.path.join(directory, name), os.path.join(ROOT, folder))
          dotted = relative[:-3].replace(os.sep, ".").removesuffix("__init__").rstrip(".")
          found[package + ("." + dotted if dotted else "")] = os.path.join(directory, name)
  return found


MODULES = _modules()


def _imports(path: str) -> set[str]:
  """The package's modules that `path` imports, at its top level or inside functions."""
  imported = set()
  for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
    if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("t2t_multimodel"):
      for alias in node.names:
        child = f"{node.module}.{alias.name}"
        imported.add(child if child in MODULES else node.module)
    elif isinstance(node, ast.Import):
      imported.update(a.name for a in node.names if a.name.startswith("t2t_multimodel"))
  return imported


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _stage(module: str) -> str:
  return module.split(".")[1] if "." in module else "errors"


def test_every_module_is_in_a_stage_of_the_flow():
  assert {_stage(m) for m in MODULES} <= set(FLOW), sorted({_stage(m) for m in MODULES} - set(FLOW))


def test_imports_point_only_to_the_same_or_an_earlier_stage():
  upward = [f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
            if FLOW.index(_stage(b)) > FLOW.index(_stage(a))]
  assert upward == []


def test_no_import_cycles():
  cycles, state = [], {}

  def visit(node, path):
    state[node] = "open"
    for target in sorted(GRAPH.get(node, ())):
      if state.get(target) == "open":
        cycles.append(" -> ".join(path[path.index(target):] + [node, target]))
      elif target not in state:
        visit(target, path + [node])
    state[node] = "done"

  for module in sorted(GRAPH):
    if module not in state:
      visit(module, [])
  assert cycles == []


def test_at_most_ten_modules_sit_directly_in_the_engine_folder():
  top = [m for m in MODULES if m.count(".") == 1 and MODULES[m].startswith(os.path.join(ROOT, "t2t_multimodel", ""))
         and not os.path.basename(MODULES[m]) == "__init__.py"]
  assert len(top) <= 10, sorted(top)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_are_small_and_clis_thin(module):
  limit = 100 if module.startswith("t2t_multimodel.bin.") else 400
  with open(MODULES[module], encoding="utf-8") as f:
    lines = sum(1 for _ in f)
  assert lines < limit, f"{MODULES[module]} has {lines} lines (limit {limit})"


def test_no_layer_has_a_step_beside_its_call():
  """Incremental decoding goes through `call(..., cache=)`: one code path per block."""
  both = []
  for module, path in MODULES.items():
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
      if isinstance(node, ast.ClassDef):
        methods = {f.name for f in node.body if isinstance(f, ast.FunctionDef)}
        if {"call", "step"} <= methods:
          both.append(f"{module}.{node.name}")
  assert both == []


def test_only_the_modalities_spell_out_a_modality_name():
  """The engine asks a Modality object (modalities/) what to do; it never tests a modality's name
  ("symbol", the default text modality, may appear as a default)."""
  spelled = set()
  for module, path in MODULES.items():
    if module.startswith(("t2t_multimodel.modalities.", "t2t_multimodel.problems")):
      continue
    tree = ast.parse(open(path, encoding="utf-8").read())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                  and isinstance(node.body[0], ast.Expr)}
    for node in ast.walk(tree):
      if (isinstance(node, ast.Constant) and node.value in ("audio", "image", "class_label")
          and id(node) not in docstrings):
        spelled.add(f"{module}:{node.lineno}")
  assert sorted(spelled) == []
