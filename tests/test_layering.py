"""The package's layering: import graph, light imports, registries that find their entries.

Layers, low to high: data (numpy/OpenCV geometry, sampling, TFDS builders) and models
(Flax) -> inference (the test-time pipeline) and evaluation -> train / steps. The import
graph is read from the source with `ast`: module-level and function-level imports both
count, and `from hyperface_jax.x import y` with y a module is an arrow to x.y.
"""

import ast
import os
import subprocess
import sys
import textwrap

import pytest

from hyperface_jax import registry

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "hyperface_jax"
HEAVY = ("tensorflow", "tensorflow_datasets", "torch")


def _modules():
  """{dotted module name: file} of every module of the package."""
  out = {}
  root = os.path.join(REPO, PACKAGE)
  for directory, subdirs, files in os.walk(root):
    subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
    for f in sorted(files):
      if f.endswith(".py"):
        rel = os.path.relpath(os.path.join(directory, f), REPO)[: -len(".py")]
        name = rel.replace(os.sep, ".")
        out[name[: -len(".__init__")] if name.endswith(".__init__") else name] = os.path.join(
          directory, f
        )
  return out


def _target(name, modules):
  """The module `name` refers to: itself, or its nearest enclosing module."""
  while name not in modules and "." in name:
    name = name.rsplit(".", 1)[0]
  return name if name in modules else None


def import_graph():
  """{module: set of hyperface_jax modules it imports (anywhere in its file)}."""
  modules = _modules()
  graph = {}
  for name, path in modules.items():
    with open(path) as f:
      tree = ast.parse(f.read(), path)
    is_package = path.endswith("__init__.py")
    arrows = set()
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        targets = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom):
        if node.level:  # relative: from the module's package (or the package itself)
          base = name.split(".") if is_package else name.split(".")[:-1]
          base = base[: len(base) - node.level + 1]
          module = ".".join(base + ([node.module] if node.module else []))
        else:
          module = node.module or ""
        targets = [
          f"{module}.{a.name}" if f"{module}.{a.name}" in modules else module for a in node.names
        ]
      else:
        continue
      for t in targets:
        if t == PACKAGE or t.startswith(PACKAGE + "."):
          t = _target(t, modules)
          if t and t != name:
            arrows.add(t)
    graph[name] = arrows
  return graph


def find_cycle(graph):
  """One import cycle [a, b, ..., a] of `graph`, or None."""
  state, stack = {}, []

  def visit(v):
    state[v] = "open"
    stack.append(v)
    for w in sorted(graph.get(v, ())):
      if state.get(w) == "open":
        return stack[stack.index(w) :] + [w]
      if w not in state:
        found = visit(w)
        if found:
          return found
    stack.pop()
    state[v] = "done"
    return None

  for v in sorted(graph):
    if v not in state:
      found = visit(v)
      if found:
        return found
  return None


def _in(module, *layers):
  return any(module == layer or module.startswith(layer + ".") for layer in layers)


# (importer layer, forbidden imported layers, why)
FORBIDDEN = (
  (
    ("hyperface_jax.data",),
    ("hyperface_jax.inference", "hyperface_jax.evaluation"),
    "data is below inference and evaluation",
  ),
  (
    ("hyperface_jax.inference",),
    ("hyperface_jax.train", "hyperface_jax.steps", "hyperface_jax.evaluation.runner"),
    "inference restores variables only: no training state, loop or evaluation driver",
  ),
  (
    ("hyperface_jax.models",),
    ("hyperface_jax.data", "hyperface_jax.inference", "hyperface_jax.evaluation"),
    "models are pure Flax modules",
  ),
)


def test_import_graph_has_no_cycle():
  cycle = find_cycle(import_graph())
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_arrow_against_the_layers():
  bad = [
    f"{src} -> {dst} ({why})"
    for src, dsts in sorted(import_graph().items())
    for importers, forbidden, why in FORBIDDEN
    if _in(src, *importers)
    for dst in sorted(dsts)
    if _in(dst, *forbidden)
  ]
  assert not bad, "imports against the layering:\n" + "\n".join(bad)


def test_graph_reader_sees_function_level_and_module_imports(tmp_path):
  # The reader itself: the known arrows of a few real modules.
  graph = import_graph()
  assert "hyperface_jax.data.face_rect" in graph["hyperface_jax.data.render"]  # from-import
  assert "hyperface_jax.checkpointing" in graph["hyperface_jax.inference.batched"]  # in a def
  assert "hyperface_jax.data.builders" in graph["hyperface_jax.data.scene_store"]  # in a def
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def _run(code):
  proc = subprocess.run(
    [sys.executable, "-c", textwrap.dedent(code)],
    cwd=REPO,
    capture_output=True,
    text=True,
    timeout=300,
    env=dict(os.environ, PYTHONPATH=REPO),
  )
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


def test_inference_models_and_light_data_modules_import_no_tensorflow_or_torch():
  out = _run(
    f"""
    import sys
    import hyperface_jax.inference, hyperface_jax.inference.analyzer, hyperface_jax.models
    import hyperface_jax.data.preprocess, hyperface_jax.data.schemes
    from hyperface_jax import registry
    # Finding a model or a proposal generator imports every module of its package.
    registry.MODELS.names(), registry.PROPOSALS.names()
    print(sorted(m for m in {HEAVY!r} if m in sys.modules))
    print(sorted(m for m in ("hyperface_jax.train", "hyperface_jax.steps") if m in sys.modules))
    """
  )
  heavy, training = out.splitlines()[-2:]
  assert heavy == "[]", f"imported {heavy}"
  assert training == "[]", f"inference imported the training code: {training}"


def test_configs_import_no_jax():
  out = _run(
    """
    import sys
    from configs import smoke
    smoke.get_config()
    print(sorted(m for m in ("jax", "tensorflow", "tensorflow_datasets", "torch") if m in sys.modules))
    """
  )
  assert out.splitlines()[-1] == "[]"


def test_registry_finds_a_model_without_importing_the_models_package_first():
  out = _run(
    """
    import sys
    from hyperface_jax import registry
    assert "hyperface_jax.models" not in sys.modules
    print(registry.MODELS.get("hyperface_alexnet").__module__)
    print("learned" in registry.PROPOSALS, "hyperface_regions" in registry.EVALUATORS)
    print("hyperface_jax.evaluation.runner" in sys.modules)
    """
  )
  assert out.splitlines()[-3:] == ["hyperface_jax.models.hyperface", "True True", "False"]


def test_unknown_name_lists_the_known_ones():
  with pytest.raises(
    KeyError, match=r"Unknown model 'hyperface_alexnt'; known: \[.*'hyperface_alexnet'"
  ):
    registry.MODELS.get("hyperface_alexnt")
  assert "hyperface_alexnet" in registry.MODELS.names()


def test_registry_imports_its_packages_once_skipping_private_and_excluded(tmp_path, monkeypatch):
  pkg = tmp_path / "regpkg"
  (pkg / "sub").mkdir(parents=True)
  (pkg / "skipped").mkdir()
  (pkg / "__init__.py").write_text("")
  (pkg / "sub" / "__init__.py").write_text("")
  for path, body in {
    "a.py": "from regpkg import REG\nREG.register('a')(1)\n",
    "sub/b.py": "from regpkg import REG\nREG.register('b')(2)\n",
    "_private.py": "raise RuntimeError('a private module was imported')\n",
    "skipped/__init__.py": "raise RuntimeError('an excluded package was imported')\n",
  }.items():
    (pkg / path).write_text(body)
  monkeypatch.syspath_prepend(str(tmp_path))
  reg = registry.Registry(
    "thing", packages=("regpkg", "regpkg_not_written_yet"), exclude=("regpkg.skipped",)
  )
  import regpkg  # pylint: disable=g-import-not-at-top

  monkeypatch.setattr(regpkg, "REG", reg, raising=False)
  calls = []
  real = registry.package_modules
  monkeypatch.setattr(
    registry, "package_modules", lambda *a: calls.append(a) or real(*a), raising=True
  )
  assert reg.get("b") == 2 and reg.get("a") == 1
  assert list(reg.names()) == ["a", "b"] and "a" in reg and "c" not in reg
  with pytest.raises(KeyError, match=r"Unknown thing 'c'; known: \['a', 'b'\]"):
    reg.get("c")
  assert len(calls) == 1  # one pass over the modules, however many misses
  assert real(("regpkg",), ("regpkg.skipped",)) == [
    "regpkg",
    "regpkg.a",
    "regpkg.sub",
    "regpkg.sub.b",
  ]
  for name in ("regpkg", "regpkg.a", "regpkg.sub", "regpkg.sub.b"):
    monkeypatch.delitem(sys.modules, name, raising=False)
