"""The package's import graph, read statically with `ast` (nothing is imported, no TF needed).

Every import counts, also those inside functions and `LazyModule("...")`: a lazy import still
ties the two modules together. Run alone with `python -m pytest -q tests/test_import_graph.py`.
"""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("spd_tf", "tfrecords_tools")


def module_files() -> dict:
    """{dotted module name: file} of every module of PACKAGES."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def _internal(name: str, modules: dict):
    """The longest prefix of `name` that is one of our modules, else None."""
    parts = name.split(".")
    while parts and ".".join(parts) not in modules:
        parts.pop()
    return ".".join(parts) or None


def imports_of(module: str, path: Path, modules: dict) -> set:
    """Our modules that `module` imports (`from pkg import mod` counts as pkg.mod)."""
    is_package = path.name == "__init__.py"
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "LazyModule" and node.args
              and isinstance(node.args[0], ast.Constant)):
            names = [node.args[0].value]  # spd_tf.lazy.LazyModule("pkg.mod"): imported on first use
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + is_package]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        targets.update(filter(None, (_internal(name, modules) for name in names)))
    return targets - {module}


def import_graph() -> dict:
    modules = module_files()
    return {module: imports_of(module, path, modules) for module, path in modules.items()}


def find_cycle(graph: dict):
    """One import cycle as [a, b, ..., a], or None."""
    state = {}  # module -> "open" while on the DFS path, "done" after

    def visit(module, stack):
        state[module] = "open"
        stack = stack + [module]
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                return stack[stack.index(target):] + [target]
            if target not in state:
                found = visit(target, stack)
                if found:
                    return found
        state[module] = "done"
        return None

    for module in sorted(graph):
        if module not in state:
            found = visit(module, [])
            if found:
                return found
    return None


def test_the_checker_finds_a_cycle_and_its_members():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_graph_sees_lazy_and_package_imports():
    graph = import_graph()
    assert "spd_tf.artifacts" in graph["spd_tf.evaluation.predictors"]  # imported inside a function
    assert "spd_tf.model.spd" in graph["spd_tf.inference.forward_pass"]  # `from spd_tf.model.spd import ...`
    assert "spd_tf.inference.postprocessing" in graph["spd_tf.tasks.segmentation"]  # LazyModule("...")


def test_no_import_cycles():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_the_library_never_imports_training():
    """training/ sits on top (it trains, evaluates and exports); nothing below reaches up."""
    upward = {(module, target) for module, targets in import_graph().items()
              if not module.startswith("spd_tf.training")
              for target in targets if target.startswith("spd_tf.training")}
    assert not upward, f"library modules importing spd_tf.training: {sorted(upward)}"
