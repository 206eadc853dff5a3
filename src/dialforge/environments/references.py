"""Python objects named in a config or a task file: ``package.module:name`` or ``path/to/file.py:name``.

A reference that cannot be followed is bad input, not a crash: ``UnresolvedReference`` says what was looked
for, why it was not found, and how to name it instead.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Any


class UnresolvedReference(ValueError):
    """A reference that names no importable object; the message says why and what to write instead."""


def split_reference(reference: str) -> tuple[str, str]:
    """The module part (a dotted name or a ``.py`` path) and the attribute part (empty for a whole module)."""
    where, colon, name = reference.rpartition(":")
    if not colon:
        return reference, ""
    return where, name


def is_file_reference(reference: str) -> bool:
    where, _ = split_reference(reference)
    return where.endswith(".py") or "/" in where or "\\" in where


def resolve(reference: str, *, base_dir: Path | None = None) -> Any:
    """The object ``reference`` names: a module, or an attribute of one (dotted, ``Toolkit.method``).

    A file path is relative to ``base_dir`` (the config file's folder); its folder goes on ``sys.path`` so that
    the file can import its neighbours.
    """
    where, name = split_reference(reference.strip())
    if not where:
        raise UnresolvedReference(
            f"{reference!r} names no module: write 'package.module:name' or 'path/to/file.py:name'"
        )
    module = _load_file(where, base_dir) if is_file_reference(reference) else _import(where)
    value: Any = module
    for part in name.split(".") if name else ():
        if not hasattr(value, part):
            public = sorted(key for key in dir(value) if not key.startswith("_"))
            shown = ", ".join(public[:25]) + (", ..." if len(public) > 25 else "")
            raise UnresolvedReference(f"{reference!r}: {where} has no attribute {part!r} (it has: {shown or 'none'})")
        value = getattr(value, part)
    return value


def _import(name: str) -> types.ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            raise UnresolvedReference(
                f"no module named {exc.name!r}: install the package that provides it (or run from the folder "
                f"that holds it), or name a file instead: 'path/to/file.py:name'"
            ) from None
        raise UnresolvedReference(f"importing {name} failed: {exc}") from None
    except Exception as exc:
        raise UnresolvedReference(f"importing {name} failed with {type(exc).__name__}: {exc}") from None


def _load_file(where: str, base_dir: Path | None) -> types.ModuleType:
    path = Path(where)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    path = path.resolve()
    if not path.is_file():
        raise UnresolvedReference(f"no such file: {path} (relative paths start at the config file's folder)")
    # One module per file, named after its path, registered so that pickling and dataclasses can find it again.
    name = f"dialforge_user_{path.stem}_{hashlib.blake2b(str(path).encode(), digest_size=4).hexdigest()}"
    if (loaded := sys.modules.get(name)) is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UnresolvedReference(f"{path} is not a Python file that can be imported")
    module = importlib.util.module_from_spec(spec)
    if str(path.parent) not in sys.path:
        sys.path.append(str(path.parent))
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise UnresolvedReference(f"running {path} failed with {type(exc).__name__}: {exc}") from None
    return module
