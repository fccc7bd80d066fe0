"""The layout of the code (README, "Where to find things"), read from the source with
`ast`: no app, no Redis. services/ is a few packages by domain and views/ one
blueprint a feature; services, views, worker and models.py have no import cycle and
models.py imports nothing from services/; project modules are imported at the top of a
module, not inside functions; nothing is left at the old flat paths; Redis key names are
spelled only in services/core/keys.py; no page script is over 600 lines and none opens
the browser's confirm, prompt or alert box; and every file and function the README's
map names exists."""
from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GRAPHED = ("services", "views", "worker", "models.py")  # whose import graph is checked
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


@functools.cache  # the files do not change during a run: parse each once
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


@functools.cache
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


def test_services_views_worker_and_models_have_no_import_cycle():
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
                        and node.module.split(".")[0] in ("services", "views", "worker")):
                    defined = _package_names(node.module)
                    names += [f"{node.module}.{alias.name}" for alias in node.names if alias.name not in defined]
            else:
                continue
            wrong += [f"{path.relative_to(ROOT)}:{node.lineno} imports {name}" for name in names
                      if name.split(".")[0] in ("services", "views", "worker") and not _is_module(name)]
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


# --- the data layer, Redis keys, page scripts and the README's map --------------------------

def test_models_import_nothing_from_services():
    """models.py is the data layer: the domain (services/) imports it, never the other way
    (a model's JSON for the API is the domain's, e.g. the catalog's model_to_dict)."""
    wrong = [f"models.py:{line} imports {target}" for target, line, _inner in imports_in(ROOT / "models.py")
             if target.split(".")[0] in ("services", "views", "worker")]
    assert not wrong, "\n".join(wrong)


def test_the_web_tier_and_the_worker_stay_apart():
    """services/ and views/ never import worker/ (which brings torch and diffusers into
    the web tier), and the worker never imports views/ (it renders no HTML)."""
    wrong = [f"{module} imports {target}" for module, targets in graph().items() for target in targets
             if module.startswith(("services", "views")) and target.startswith("worker")
             or module.startswith("worker") and target.startswith("views")]
    assert not wrong, "\n".join(wrong)


def test_the_graph_covers_models_and_the_worker():
    edges = graph()
    assert "models" in edges and "models" in edges["services.generation.tasks"]
    assert any(module.startswith("worker.") and edges[module] for module in edges)


KEYS_MODULE = "services/core/keys.py"
# Where Redis key names may not be spelled: the project's code (tests pin the names).
KEY_USERS = ("app.py", "config.py", "extensions.py", "models.py", "qworker.py", "qarchiver.py",
             "serve.py", "services", "views", "worker", "bench")
# Literals that look like keys and are not, with why: {(file, literal): why}.
KEY_LITERALS_ALLOWED = {
    ("services/core/events.py", "daydream:disconnect"): "a Socket.IO event's name, not a Redis key",
}


def key_prefixes() -> tuple[str, ...]:
    """What every key begins with: keys.PREFIX and a colon, and the rate-limit store's
    prefix (keys.ratelimit_prefix)."""
    tree = ast.parse((ROOT / KEYS_MODULE).read_text())
    [prefix] = [node.value.value for node in tree.body if isinstance(node, ast.Assign)
                and [ast.unparse(t) for t in node.targets] == ["PREFIX"]]
    return f"{prefix}:", f"{prefix}-limits:"


def key_literals(source: str, prefixes: tuple[str, ...]) -> list[tuple[int, str]]:
    """(line, text) of each string that spells a key: a literal or an f-string starting
    with a key prefix, or a call key("part", ...) with a literal first part. Docstrings
    and other bare strings (comments in effect) are not keys."""
    tree = ast.parse(source)
    skip = {id(node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, (ast.Constant, ast.JoinedStr))}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
            if id(node) not in skip and node.values and isinstance(node.values[0], ast.Constant) \
                    and str(node.values[0].value).startswith(prefixes):
                found.append((node.lineno, ast.unparse(node)))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip \
                and node.value.startswith(prefixes):
            found.append((node.lineno, node.value))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str) \
                and (isinstance(node.func, ast.Name) and node.func.id == "key"
                     or isinstance(node.func, ast.Attribute) and node.func.attr == "key"
                     and isinstance(node.func.value, ast.Name)):
            found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_redis_key_names_are_spelled_only_in_the_keys_module():
    prefixes = key_prefixes()
    wrong = []
    for path in python_files(*KEY_USERS):
        name = str(path.relative_to(ROOT))
        if name == KEYS_MODULE:
            continue
        wrong += [f"{name}:{line} {text}" for line, text in key_literals(path.read_text(), prefixes)
                  if (name, text) not in KEY_LITERALS_ALLOWED]
    assert not wrong, f"Redis keys spelled outside {KEYS_MODULE} (add a function there):\n" + "\n".join(wrong)


def test_the_key_check_catches_what_it_is_for():
    source = ('"""A docstring naming daydream:progress:<id>."""\n'
              'A = "daydream:stop:" + task_id\n'
              'B = f"daydream:preview:{task_id}"\n'
              'C = key("progress", task_id)\n'
              'D = keys.progress(task_id)\n'
              'E = f"{keys.PREFIX}:x" if False else "daydream-demo"\n'
              'F = "daydream-limits:q"\n')
    assert key_literals(source, ("daydream:", "daydream-limits:")) == [
        (2, "daydream:stop:"), (3, "f'daydream:preview:{task_id}'"), (4, "key('progress', task_id)"),
        (7, "daydream-limits:q")]


PAGES = ROOT / "site" / "static" / "js" / "pages"
PAGE_SCRIPT_MAX_LINES = 600
# The browser's own boxes block the page, cannot be styled, and may be suppressed (then
# they answer "no"): lib/confirm.js asks in the page's own dialog instead.
BROWSER_BOXES = re.compile(r"\b(?:window|globalThis|self)\s*\.\s*(?:confirm|prompt|alert)\b"
                           r"|(?<![\w$.])(?:confirm|prompt|alert)\s*\(")


def without_js_comments(text: str) -> str:
    """The script with its comments blanked (line numbers kept): /* ... */, and // to the
    end of a line where // starts the line or follows a space (not inside "http://")."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n"), text, flags=re.S)
    return re.sub(r"(^|\s)//[^\n]*", r"\1", text, flags=re.M)


def browser_boxes(text: str) -> list[tuple[int, str]]:
    return [(n, line.strip()) for n, line in enumerate(without_js_comments(text).splitlines(), 1)
            if BROWSER_BOXES.search(line)]


def test_no_page_script_is_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in sorted(PAGES.rglob("*.js"))
            if (n := len(p.read_text().splitlines())) > PAGE_SCRIPT_MAX_LINES}
    assert sorted(PAGES.rglob("*.js")), "no page scripts found"
    assert not long, f"page scripts over {PAGE_SCRIPT_MAX_LINES} lines (split them as pages/studio/ is): {long}"


def test_no_script_opens_the_browsers_confirm_prompt_or_alert_box():
    found = [f"{p.relative_to(ROOT)}:{n}: {line}" for p in sorted((ROOT / "site" / "static" / "js").rglob("*.js"))
             for n, line in browser_boxes(p.read_text())]
    assert not found, "use lib/confirm.js (confirmAction, askText, notice):\n" + "\n".join(found)


def test_the_box_check_catches_what_it_is_for():
    script = ('if (!window.confirm("Delete?")) return;\n'
              'const name = prompt("Name?");\n'
              '  alert ("done");\n'
              'const ok = await confirmAction({title: "Delete?"});\n'
              'dialog.prompt("x"); myalert(1); // confirm("in a comment")\n'
              '/* alert("in a block\n comment") */ fetch("http://example.com/a");\n'
              'const c = window.confirm;\n')
    assert [n for n, _line in browser_boxes(script)] == [1, 2, 3, 8]


# The README's "Where to find things" map: every `path` and `path:function` it names exists.
README = ROOT / "README.md"
MAP_HEADING = "## Where to find things"
MAP_ENTRY = re.compile(r"`((?:[\w.-]+/)*[\w.-]+\.(?:py|js|html|css|md))(?::([\w.]+))?`")


def map_section(text: str) -> str:
    """The map's text: from its heading to the next heading of its level."""
    start = text.find(MAP_HEADING + "\n")
    if start < 0:
        return ""
    end = text.find("\n## ", start + len(MAP_HEADING))
    return text[start:end if end >= 0 else len(text)]


def defines(path: Path, name: str) -> bool:
    """Whether the file defines name: a Python function, class, method (Class.method) or
    top-level name; a JS function, class or const/let/var; a Jinja macro or block."""
    text = path.read_text()
    if path.suffix == ".py":
        scope = ast.parse(text).body
        for part in name.split("."):
            found = None
            for node in scope:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.name == part:
                    found = node
                elif isinstance(node, (ast.Assign, ast.AnnAssign)) and part in {
                        t.id for t in (node.targets if isinstance(node, ast.Assign) else [node.target])
                        if isinstance(t, ast.Name)}:
                    found = node
            if found is None:
                return False
            scope = getattr(found, "body", [])
        return True
    word = re.escape(name)
    if path.suffix == ".js":
        return re.search(rf"\b(?:function\s*\*?|class|const|let|var)\s+{word}\b", text) is not None
    if path.suffix == ".html":
        return re.search(rf"{{%-?\s*(?:macro|block)\s+{word}\b", text) is not None
    return False


def missing_map_entries(text: str, root: Path) -> list[str]:
    missing = []
    for match in MAP_ENTRY.finditer(map_section(text)):
        file, name = match.group(1), match.group(2)
        path = root / file
        if not path.is_file():
            missing.append(f"{match.group(0)}: no such file")
        elif name and not defines(path, name):
            missing.append(f"{match.group(0)}: {file} defines no {name}")
    return missing


def test_every_file_and_function_the_readme_map_names_exists():
    text = README.read_text()
    section = map_section(text)
    assert section, f"README.md has no {MAP_HEADING!r} section"
    assert len(MAP_ENTRY.findall(section)) >= 60, "the map names too few places to be the map"
    missing = missing_map_entries(text, ROOT)
    assert not missing, "the README's map names what is not there (update the map):\n" + "\n".join(missing)


def test_the_map_check_catches_what_it_is_for(tmp_path):
    (tmp_path / "views").mkdir()
    (tmp_path / "views" / "studio.py").write_text("class Page:\n    def show(self): pass\n\ndef studio(): pass\n")
    (tmp_path / "main.js").write_text("export async function start() {}\nconst store = {};\n")
    readme = ("# X\n\n## Where to find things\n\n| `/studio` | `views/studio.py:studio` | `views/studio.py:Page.show` |\n"
              "| `views/studio.py:gone` | `views/old.py` | `main.js:start` | `main.js:store` | `main.js:nope` |\n"
              "| `views/studio.py:Page.hide` |\n\n## Next\n\n`views/elsewhere.py`\n")
    assert missing_map_entries(readme, tmp_path) == [
        "`views/studio.py:gone`: views/studio.py defines no gone", "`views/old.py`: no such file",
        "`main.js:nope`: main.js defines no nope", "`views/studio.py:Page.hide`: views/studio.py defines no Page.hide"]


ROUTE_DECORATORS = {"route", "get", "post", "put", "patch", "delete"}


def routed_views() -> set[str]:
    """`views/x.py:function` of every view function a route decorator registers
    (`@bp.route(...)`, `@bp.get(...)`, a module's own `@route(...)`)."""
    found = set()
    for path in python_files("views"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and any(
                    isinstance(d, ast.Call) and (isinstance(d.func, ast.Attribute) and d.func.attr in ROUTE_DECORATORS
                                                 or isinstance(d.func, ast.Name) and d.func.id in ROUTE_DECORATORS)
                    for d in node.decorator_list):
                found.add(f"{path.relative_to(ROOT)}:{node.name}")
    return found


def test_every_route_is_on_the_readme_map():
    named = {f"{m.group(1)}:{m.group(2)}" for m in MAP_ENTRY.finditer(map_section(README.read_text())) if m.group(2)}
    views = routed_views()
    assert len(views) > 100
    assert not views - named, "routes missing from the README's map:\n" + "\n".join(sorted(views - named))
