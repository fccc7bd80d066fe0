"""The layout of the code (README, "Where to find things"), read from the source with
`ast`: no app, no Redis. services/ is a few packages by domain and views/ one
blueprint a feature; neither has an import cycle; project modules are imported at the
top of a module, not inside functions; and nothing is left at the old flat paths."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRAPHED = ("services", "views")  # the packages whose import graph is checked
PROJECT = {"app", "config", "extensions", "models", "services", "views", "worker"}
# Where the source of every importer lives (tests/ too: a test importing an old path fails).
IMPORTERS = ("app.py", "config.py", "extensions.py", "models.py", "qworker.py", "qarchiver.py",
             "serve.py", "services", "views", "worker", "bench", "migrations", "tests")
# Imports inside functions in services/ that are allowed, with the reason:
# {(module, imported module): why}. Empty: every project import is at the top.
FUNCTION_IMPORTS_ALLOWED: dict[tuple[str, str], str] = {}
# The flat modules services/ had before it was grouped into packages.
OLD_FLAT = ("account_links", "accounts", "admin", "archives", "boards", "catalog", "credits",
            "dispatch", "errors", "estimates", "events", "gallery", "imaging", "liveness", "mail",
            "openapi", "queue", "ratelimit", "schedulers", "setup", "showcase", "storage", "tasks",
            "tiers", "uploads", "validation", "vouchers")


def dotted_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def python_files(*roots: str) -> list[Path]:
    files = []
    for root in roots:
        path = ROOT / root
        files += [path] if path.is_file() else sorted(path.rglob("*.py")) if path.is_dir() else []
    return [f for f in files if "__pycache__" not in f.parts]


MODULES = {dotted_name(path): path for path in python_files(*GRAPHED)}


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def imports_in(path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import in the file. `from a
    import b` names a.b when that is a module, else a."""
    module = dotted_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, in_function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = _absolute(child, module, path.name == "__init__.py")
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.append((full if full in MODULES or _is_module(full) else base,
                                  child.lineno, in_function))
            visit(child, inside)

    visit(tree, False)
    return found


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def graph() -> dict[str, set[str]]:
    return {module: {target for target, _line, _inner in imports_in(path) if target in MODULES and target != module}
            for module, path in MODULES.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = walk(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = walk(node)
            if cycle:
                return cycle
    return None


def test_the_graph_is_read():
    edges = graph()
    assert len(MODULES) > 40 and sum(len(t) for t in edges.values()) > 100
    assert "services.core.errors" in edges["services.generation.tasks"]
    assert "views.api.common" in edges["views.api.admin"]


def test_services_and_views_have_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " → ".join(cycle)


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_services_are_grouped_into_a_few_packages():
    packages = sorted(p.name for p in (ROOT / "services").iterdir()
                      if p.is_dir() and (p / "__init__.py").exists())
    assert packages == ["accounts", "core", "generation", "library", "moderation"]
    flat = sorted(p.name for p in (ROOT / "services").glob("*.py"))
    assert flat == ["__init__.py"], f"modules left at the top of services/: {flat}"


def test_nothing_is_left_at_the_old_flat_paths():
    left = [f"services/{name}.py" for name in OLD_FLAT if (ROOT / "services" / f"{name}.py").exists()]
    left += [f"services/{name}/" for name in OLD_FLAT if (ROOT / "services" / name / "__init__.py").exists()
             and name != "accounts"]
    assert not left, f"left at the old paths: {left}"


def _package_names(package: str) -> set[str]:
    """The names a package's __init__.py defines at its top level."""
    tree = ast.parse(ROOT.joinpath(*package.split("."), "__init__.py").read_text())
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def test_every_import_of_a_project_module_names_one_that_exists():
    """An import of an old path (services.tasks, `from services import queue`,
    services.openapi …) anywhere fails here, before any test that would import it."""
    wrong = []
    for path in python_files(*IMPORTERS):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names = [node.module]
                if (ROOT.joinpath(*node.module.split("."), "__init__.py").is_file()
                        and node.module.split(".")[0] in ("services", "views")):
                    defined = _package_names(node.module)
                    names += [f"{node.module}.{alias.name}" for alias in node.names if alias.name not in defined]
            else:
                continue
            wrong += [f"{path.relative_to(ROOT)}:{node.lineno} imports {name}" for name in names
                      if name.split(".")[0] in ("services", "views") and not _is_module(name)]
    assert not wrong, "\n".join(wrong)


def test_services_import_project_modules_at_the_top():
    inner = []
    for module, path in MODULES.items():
        if not module.startswith("services."):
            continue
        for target, line, in_function in imports_in(path):
            if in_function and target.split(".")[0] in PROJECT and (module, target) not in FUNCTION_IMPORTS_ALLOWED:
                inner.append(f"{path.relative_to(ROOT)}:{line} imports {target} inside a function")
    assert not inner, "\n".join(inner)


def test_views_import_project_modules_at_the_top():
    inner = [f"{path.relative_to(ROOT)}:{line} imports {target} inside a function"
             for module, path in MODULES.items() if module.startswith("views")
             for target, line, in_function in imports_in(path)
             if in_function and target.split(".")[0] in PROJECT]
    assert not inner, "\n".join(inner)


def test_the_layers_point_one_way():
    """services never import views (no request objects there); services.core imports no
    other services package."""
    wrong = []
    for module, targets in graph().items():
        for target in targets:
            if module.startswith("services") and target.startswith("views"):
                wrong.append(f"{module} imports {target}")
            if module.startswith("services.core") and target.startswith("services.") \
                    and not target.startswith("services.core"):
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(wrong)


def test_public_api_routes_are_marked_where_they_are_defined():
    """No list of public endpoints kept elsewhere: a route is public by its @public."""
    for path in python_files("views"):
        assert "PUBLIC_ENDPOINTS" not in path.read_text(), path


def test_pages_check_access_at_their_blueprint():
    """Sign-in and staff checks are a blueprint's before_request (views/access.py,
    views/admin/common.py, views/api/common.py), never a decorator on each route."""
    wrong = [str(path.relative_to(ROOT)) for path in python_files("views") if "@login_required" in path.read_text()]
    assert not wrong, f"per-route sign-in checks in: {wrong}"
    for name in ("studio", "gallery", "account"):
        tree = ast.parse((ROOT / "views" / f"{name}.py").read_text())
        hooks = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Attribute) and node.func.attr == "before_request"
                 and [ast.unparse(arg) for arg in node.args] == ["require_sign_in"]]
        assert hooks, f"views/{name}.py does not register require_sign_in on its blueprint"


def test_the_staff_pages_are_one_package():
    """views/admin/: one module a page on the blueprint of views/admin/common.py; nothing
    left at the flat paths views/admin.py, views/admin_audit.py, views/admin_moderation.py."""
    assert (ROOT / "views" / "admin" / "__init__.py").is_file()
    assert not sorted(p.name for p in (ROOT / "views").glob("admin*.py"))
    pages = [m for m in MODULES if m.startswith("views.admin.") and m != "views.admin.common"]
    assert len(pages) >= 6 and all("views.admin.common" in graph()[m] for m in pages), pages
