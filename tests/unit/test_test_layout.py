"""The layout of tests/ itself: a test module imports helpers only from tests/helpers.py
(shared by the folders; tests/checkpoints.py, which writes single-file checkpoints, is
its torch-heavy sibling) or its own folder's helpers.py, never from another test module or
a conftest; no top-level function or class is defined in two files under tests/; and
the unit tests cannot reach Redis, the network or a service process (tests/unit/conftest.py)."""
from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]

# Names defined in more than one file on purpose, each with why. pytest hooks
# (pytest_*) are per conftest by design and need no entry.
DEFINED_TWICE = {
    "live": "tests/e2e/test_studio_families.py overrides the e2e conftest's `live` server with one "
            "offering every family's demo model (DAYDREAM_DEMO_MODELS=all): the nearest fixture wins",
    "app": "tests/integration/test_signout.py overrides the integration conftest's `app` "
           "fixture with the idle app: pytest takes the nearest fixture of a name",
}


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def allowed_imports(path: Path, root: Path) -> set[str]:
    """tests.helpers, and the helpers module of each package from tests down to the file's."""
    package = module_name(path.parent / "__init__.py", root).split(".")
    return {".".join(package[:n] + ["helpers"]) for n in range(1, len(package) + 1)} | {"tests.checkpoints"}


def packages(root: Path) -> set[str]:
    return {module_name(init, root) for init in root.rglob("__init__.py")} | {root.name}


def imports(path: Path, root: Path):
    """(line, modules) for every import statement in the file, at any depth, relative
    ones resolved; `from package import name` names the module package.name."""
    name = module_name(path, root)
    here = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    known_packages = packages(root)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield node.lineno, [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = here[:len(here) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            if module in known_packages:
                yield node.lineno, [f"{module}.{alias.name}" for alias in node.names]
            else:
                yield node.lineno, [module]


def import_problems(root: Path) -> list[str]:
    known_packages = packages(root)
    problems = []
    for path in sorted(root.rglob("*.py")):
        allowed = allowed_imports(path, root) - {module_name(path, root)}
        for line, modules in imports(path, root):
            for module in modules:
                first = module.split(".")[0]
                if first == root.name:
                    ok = module in allowed or module in known_packages
                else:  # a test module or conftest imported by a bare name
                    ok = not (first == "conftest" or first.startswith("test_"))
                if not ok:
                    problems.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return problems


def names_defined_twice(root: Path) -> dict[str, list[str]]:
    where = defaultdict(list)
    for path in sorted(root.rglob("*.py")):
        for node in ast.parse(path.read_text(), filename=str(path)).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                where[node.name].append(str(path.relative_to(root.parent)))
    return {name: files for name, files in where.items()
            if len(files) > 1 and name not in DEFINED_TWICE and not name.startswith("pytest_")}


def test_no_test_module_imports_another_test_module_or_a_conftest():
    problems = import_problems(TESTS)
    assert problems == [], (
        "import helpers from tests/helpers.py or the folder's helpers.py (fixtures are found "
        "by pytest, never imported):\n" + "\n".join(problems))


def test_no_function_or_class_is_defined_in_two_test_files():
    twice = names_defined_twice(TESTS)
    assert twice == {}, (
        "merge helpers that do the same thing into tests/helpers.py or the folder's "
        "helpers.py, and rename the ones that do not:\n"
        + "\n".join(f"{name}: {', '.join(files)}" for name, files in sorted(twice.items())))


def test_every_allowed_duplicate_is_still_defined_twice():
    where = defaultdict(set)
    for path in TESTS.rglob("*.py"):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                where[node.name].add(path)
    assert [name for name in DEFINED_TWICE if len(where[name]) < 2] == []


def test_the_checks_catch_what_they_are_for(tmp_path):
    root = tmp_path / "tests"
    files = {
        "__init__.py": "",
        "helpers.py": "",
        "conftest.py": "from tests.helpers import x\n",
        "unit/__init__.py": "",
        "unit/helpers.py": "from tests.helpers import x\ndef unique(): pass\n",
        "unit/test_a.py": ("from tests.unit.helpers import y\nfrom tests import helpers\n"
                           "from . import helpers as h\n"),
        "unit/test_b.py": ("from tests.unit.test_a import z\nfrom tests.conftest import c\n"
                           "def f():\n    from .conftest import d\n    from tests.e2e.helpers import e\n"
                           "def unique(): pass\n"),
        "e2e/__init__.py": "",
        "e2e/helpers.py": "",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)

    assert import_problems(root) == [
        "tests/unit/test_b.py:1 imports tests.unit.test_a",
        "tests/unit/test_b.py:2 imports tests.conftest",
        "tests/unit/test_b.py:4 imports tests.unit.conftest",
        "tests/unit/test_b.py:5 imports tests.e2e.helpers",
    ]
    assert names_defined_twice(root) == {"unique": ["tests/unit/helpers.py", "tests/unit/test_b.py"]}


# --- unit tests are refused services (tests/unit/conftest.py) ------------------------------

def test_a_unit_test_cannot_reach_redis(isolation):
    import redis

    from tests.helpers import REDIS_URL

    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except Exception:
        pass  # swallowed, as code that survives a Redis outage does: the refusal is kept
    assert isolation.refused and "connect a socket" in isolation.refused[0]
    isolation.refused.clear()  # refused as it should be: this test passes


def test_a_unit_test_cannot_reach_the_network_from_a_thread_it_starts(isolation):
    import socket
    import threading

    errors = []

    def reach_out():
        try:
            socket.create_connection(("127.0.0.1", 5432), timeout=1)
        except Exception as exc:
            errors.append(type(exc).__name__)

    thread = threading.Thread(target=reach_out)
    thread.start()
    thread.join()
    assert errors == ["UnitIsolationError"]
    assert isolation.refused
    isolation.refused.clear()


def test_a_unit_test_cannot_start_a_worker_but_can_run_other_programs(isolation):
    root = TESTS.parent
    with pytest.raises(Exception, match="unit tests use no Redis"):
        subprocess.run([sys.executable, str(root / "qworker.py")], cwd=root, timeout=30)
    assert isolation.refused
    isolation.refused.clear()
    assert subprocess.run([sys.executable, "-c", "print('fine')"], capture_output=True,
                          text=True, timeout=30).stdout == "fine\n"
