"""The spec library that ships inside the package: ``resbench/specs/`` (torchvision, cifar,
preact, ablations, spaces, suites and ``golden.yaml``). The repository's top-level ``specs``
is a link to this folder, so there is one copy.

Library files are found by name, as timm finds its models: ``resnet50`` (a file's stem) or
``torchvision/resnet50`` (its path in the library, without the suffix). A path still works
wherever a name does: :func:`resolve` returns an existing file as it is.
"""
from __future__ import annotations

import fnmatch
from importlib import resources
from pathlib import Path

from resbench.errors import SpecError, unknown
from resbench.spec.load import NOT_SPEC_FILES, NOT_SPECS, SUFFIXES

# The library folders of each kind of file (specs: every folder but these).
KINDS = {"spec": None, "suite": ("suites",), "space": ("spaces",)}


def library_root() -> Path:
    """The folder of the shipped spec library (a real folder: resbench is never zipped)."""
    return Path(str(resources.files("resbench") / "specs"))


def library_files(kind: str = "spec") -> dict[str, Path]:
    """``{"torchvision/resnet50": path, ...}``: the library's files of one kind (``spec``,
    ``suite`` or ``space``), by their path in the library without the suffix, sorted."""
    root = library_root()
    folders = KINDS[kind]
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if path.suffix.lower() not in SUFFIXES or path.name in NOT_SPEC_FILES:
            continue
        top = rel.parts[0] if len(rel.parts) > 1 else ""
        if (top in folders) if folders else (top not in NOT_SPECS):
            out[rel.with_suffix("").as_posix()] = path
    return out


def list_names(pattern: str = "*", kind: str = "spec") -> list[str]:
    """Library names matching a glob (``resnet*``, ``cifar/*``), like ``timm.list_models``; a
    pattern without ``/`` matches the short name (the stem)."""
    names = library_files(kind)
    return [name for name in names
            if fnmatch.fnmatchcase(name if "/" in pattern else name.rsplit("/", 1)[-1], pattern)]


def resolve(name_or_path: str | Path, kinds: tuple[str, ...] = ("spec",)) -> Path:
    """The file a name or path means: an existing file, or anything with a file suffix, as it
    is (a missing one is the reader's "file not found"); else the library file of that name, in
    the first of ``kinds`` that has it. A name nothing matches, or a short name two library
    files share, is a :class:`SpecError` listing the names that exist."""
    path = Path(name_or_path)
    if path.is_file() or path.suffix.lower() in SUFFIXES:
        return path
    name = str(name_or_path)
    known: set[str] = set()
    for kind in kinds:
        files = library_files(kind)
        if name in files:
            return files[name]
        matches = [full for full in files if full.rsplit("/", 1)[-1] == name]
        if len(matches) > 1:
            raise SpecError(f"{kind} name {name!r} is ambiguous; name its folder too",
                            value=name, allowed=matches)
        if matches:
            return files[matches[0]]
        known.update(full.rsplit("/", 1)[-1] for full in files)
    what = " or ".join(kinds)
    raise unknown(what, name, sorted(known),
                  detail=" (not a file, nor a name in the spec library: resbench list)")
