"""Reading the models folder safely: the one place that says whether a path under it may
be opened, and that walks it.

A link that leads out of the models folder is not followed (nor is what it names
opened) unless DAYDREAM_MODELS_FOLLOW_LINKS is true: a folder dropped in by someone, or
a link to /, must not make the scan read /etc or walk /proc. Links that stay inside the
folder are fine. An entry that cannot be read (permissions, a link loop) is reported
with why, and the walk goes on. Used by the scan (catalog.py), the family detection of
its files (families.py) and the worker's loader (worker/pipelines/load.py); no Flask, no torch."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

FOLLOW_SETTING = "DAYDREAM_MODELS_FOLLOW_LINKS=true"


class OutsideFolder(PermissionError):
    """A path under the models folder leads out of it and links out are not followed."""


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


@dataclass(frozen=True)
class Entry:
    """One thing found by walk(): a file or folder (`why` empty), or one that was not
    read, with why (`why` set)."""

    rel: Path
    path: Path
    is_dir: bool = False
    why: str = ""


class ModelsFolder:
    """The models folder and its link rule (follow_links: DAYDREAM_MODELS_FOLLOW_LINKS)."""

    def __init__(self, root: Path, follow_links: bool = False):
        self.root = Path(root)
        self.follow_links = bool(follow_links)

    def _real_root(self) -> Path:
        return self.root.resolve()

    def rel(self, path: Path) -> str:
        """The path as staff know it: relative to the models folder where it is under it."""
        try:
            return str(Path(path).relative_to(self.root))
        except ValueError:
            return str(path)

    def leaves(self, path: Path) -> Path | None:
        """Where `path` (under the models folder) really leads when that is outside the
        folder, else None. A link loop leads nowhere: it is reported as leaving."""
        try:
            real = Path(path).resolve(strict=False)
            root = self._real_root()
        except (OSError, RuntimeError):  # a link loop
            return Path(path)
        return None if real == root or root in real.parents else real

    def check(self, path: Path) -> Path:
        """`path` when it may be opened; OutsideFolder (an OSError) says why when it leads
        out of the folder and links out are not followed."""
        if self.follow_links:
            return Path(path)
        target = self.leaves(path)
        if target is not None:
            raise OutsideFolder(f"{self.rel(path)} links to {target}, outside the models folder: "
                                f"not followed ({FOLLOW_SETTING} follows such links)")
        return Path(path)

    def allowed(self, path: Path) -> bool:
        try:
            self.check(path)
        except OSError:
            return False
        return True

    def first_link_out(self, path: Path, max_entries: int = 10000) -> Path | None:
        """The first file or folder in `path` (a model folder or file) that leads out of the
        models folder, when links out are not followed; None when there is none. Reads
        names only, never a file."""
        if self.follow_links:
            return None
        if self.leaves(path) is not None:
            return Path(path)
        if not Path(path).is_dir():
            return None
        seen = 0
        # Links inside are followed (what they hold is checked too): each folder's
        # entries are checked before os.walk goes into any of them.
        for current, dirs, files in os.walk(path, followlinks=True):
            for name in sorted(dirs + files):
                seen += 1
                entry = Path(current) / name
                if entry.is_symlink() and self.leaves(entry) is not None:
                    return entry
            if seen > max_entries:
                break
        return None

    def resolve(self, spec: str) -> Path:
        """The path of a model or LoRA spec: absolute (the operator's DAYDREAM_MODEL) as it
        is, or relative to the models folder, which it may not leave (`..` or a link out)."""
        path = Path(spec).expanduser()
        if path.is_absolute():
            return path
        return self.check(self.root / path)

    def walk(self, descend: Callable[[Path, Path], bool], max_depth: int = 4) -> Iterator[Entry]:
        """Every file and folder of the models folder, sorted, the folder's own first:
        descends into a folder when descend(rel, path) says so (at most max_depth deep).
        A link out (when not followed), a folder that cannot be listed, or an entry that
        cannot be looked at is yielded with why, and the walk goes on."""
        if not self.root.is_dir():
            return
        # (folder, the real paths of the folders above it): a link back up is a loop.
        stack: list[tuple[Path, frozenset]] = [(self.root, frozenset())]
        while stack:
            current, above = stack.pop()
            rel_current = current.relative_to(self.root)
            try:
                real = current.resolve()
                if real in above:  # a link to a folder it is in: walked already
                    continue
                entries = sorted(current.iterdir())
            except (OSError, RuntimeError) as exc:
                why = _why(exc) if isinstance(exc, OSError) else "a link loop"
                yield Entry(rel_current, current, True, f"{rel_current} could not be read: {why}")
                continue
            below = []
            for path in entries:
                rel = path.relative_to(self.root)
                try:
                    self.check(path)
                    is_dir = path.is_dir()
                except OutsideFolder as exc:
                    yield Entry(rel, path, False, str(exc))
                    continue
                except OSError as exc:
                    yield Entry(rel, path, False, f"{rel} could not be read: {_why(exc)}")
                    continue
                yield Entry(rel, path, is_dir)
                if is_dir and len(rel.parts) < max_depth and descend(rel, path):
                    below.append((path, above | {real}))
            stack.extend(reversed(below))
