"""Reading spec-language files: safe YAML/JSON, ``_base_`` inheritance, and turning validation
failures into a :class:`SpecError` that names the file, the field path and what is allowed."""
from __future__ import annotations

import json
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from resbench.errors import SpecError, join_path, unknown
from resbench.spec.merge import merge
from resbench.spec.schema import ShapeError, Spec

BASE_KEY = "_base_"
SUFFIXES = (".yaml", ".yml", ".json")


def read_file(path: str | Path) -> dict[str, Any]:
    """One file's top-level mapping, parsed safely (YAML never constructs objects)."""
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise SpecError("unsupported file type", file=path, value=path.suffix, allowed=SUFFIXES)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError("file not found", file=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read file: {exc}", file=path) from None
    try:
        data = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"invalid YAML: {exc.problem} {where}".strip(), file=path) from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecError(f"invalid {path.suffix[1:].upper()}: {exc}", file=path) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"the top level must be a mapping, not {type(data).__name__}", file=path)
    return data


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A file's mapping with its ``_base_`` chain merged in (the file's own fields win).

    ``name`` is never inherited: a file without one is named after its stem.
    """
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(p.name for p in (*_seen, path))
        raise SpecError(f"_base_ inheritance forms a cycle: {chain}", file=_seen[-1], path=BASE_KEY)
    data = read_file(path)
    base = data.pop(BASE_KEY, None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise SpecError("_base_ must be a relative or absolute file path", file=path,
                            path=BASE_KEY, value=base)
        base_path = (path.parent / base).resolve()
        if not base_path.is_file():
            raise SpecError(f"base file not found: {base_path}", file=path, path=BASE_KEY, value=base)
        merged = load_raw(base_path, (*_seen, path))
        merged.pop("name", None)
        data = merge(merged, data, file=path)
    data.setdefault("name", path.stem)
    return data


def parse_model(model: type[BaseModel], data: Mapping[str, Any], *,
                file: str | Path | None = None, prefix: str = "") -> Any:
    """Validate ``data`` into ``model``, turning any failure into a located :class:`SpecError`."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise spec_error_from_validation(exc, model, file=file, prefix=prefix) from None


def spec_error_from_validation(exc: ValidationError, model: type[BaseModel], *,
                               file: str | Path | None = None, prefix: str = "") -> SpecError:
    """The first error of a pydantic ``ValidationError`` as a :class:`SpecError`."""
    errors = exc.errors(include_url=False)
    # An error inside a list item also fails the list itself; report only the innermost.
    locs = [tuple(e["loc"]) for e in errors]
    errors = [e for e, loc in zip(errors, locs)
              if not any(len(o) > len(loc) and o[:len(loc)] == loc for o in locs)]
    err = errors[0]
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" \
        if len(errors) > 1 else ""
    shape = (err.get("ctx") or {}).get("error")
    if isinstance(shape, ShapeError):
        return SpecError(shape.message + more, file=file, path=join_path(prefix, shape.path),
                         value=shape.value, allowed=shape.allowed)
    loc = tuple(part for part in err["loc"] if not _is_union_tag(part))
    path = join_path(prefix, format_path(loc))
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return unknown("field", loc[-1], sorted(_fields_at(model, loc[:-1])), file=file,
                       path=path, detail=more)
    if kind == "missing":
        return SpecError(f"required field is missing{more}", file=file, path=path)
    allowed = _allowed_at(model, loc)
    if allowed is not None and kind in ("literal_error", "enum"):
        return unknown("value", value, allowed, file=file, path=path, detail=more)
    message = err["msg"].removeprefix("Value error, ")
    return SpecError(f"{message}, got {value!r}{more}", file=file, path=path, value=value)


def format_path(loc: tuple[Any, ...]) -> str:
    """``("stages", 2, "shortcut")`` → ``"stages[2].shortcut"``."""
    out = ""
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else join_path(out, str(part))
    return out


def _is_union_tag(part: Any) -> bool:
    # pydantic adds the union member's type name (e.g. "int", "function-after[...]") to locs.
    return isinstance(part, str) and ("[" in part or part in {"int", "float", "str", "bool",
                                                             "dict", "list", "tuple", "none"})


def _annotation_at(model: type[BaseModel], loc: tuple[Any, ...]) -> Any:
    """The annotation of the field at ``loc`` (None if the path leaves the schema)."""
    annotation: Any = model
    for part in loc:
        if isinstance(part, int):
            annotation = _element_type(annotation)
            continue
        target = _model_in(annotation)
        if target is None or part not in target.model_fields:
            return None
        annotation = target.model_fields[part].annotation
    return annotation


def field_info(loc: tuple[Any, ...]) -> tuple[bool, list[Any] | None]:
    """Whether ``loc`` names a field of a spec (under ``recipe``, of a recipe), and the values
    it allows when it is a choice of words (None otherwise)."""
    from resbench.spec.recipe import Recipe

    model, rest = (Recipe, loc[1:]) if loc[:1] == ("recipe",) else (Spec, loc)
    if _annotation_at(model, rest) is None:
        return False, None
    return True, _allowed_at(model, rest)


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    target = _model_in(_annotation_at(model, loc))
    return list(target.model_fields) if target is not None else []


def _allowed_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[Any] | None:
    annotation = _annotation_at(model, loc)
    for candidate in _flatten(annotation):
        if get_origin(candidate) is Literal:
            return list(get_args(candidate))
    return None


def _flatten(annotation: Any) -> list[Any]:
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return [a for arg in get_args(annotation) for a in _flatten(arg)]
    return [annotation]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    for candidate in _flatten(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _element_type(annotation: Any) -> Any:
    for candidate in _flatten(annotation):
        if get_origin(candidate) in (list, tuple) and get_args(candidate):
            return get_args(candidate)[0]
    return None


def parse_spec(data: Mapping[str, Any], file: str | Path | None = None) -> Spec:
    """Validate a spec mapping (already merged with its bases) into a frozen :class:`Spec`."""
    if not isinstance(data, Mapping):
        raise SpecError(f"a spec must be a mapping, not {type(data).__name__}", file=file)
    if BASE_KEY in data:
        raise SpecError("_base_ is resolved when loading a file; use load_spec(path)", file=file,
                        path=BASE_KEY)
    spec = parse_model(Spec, data, file=file)
    if spec.recipe is not None:
        from resbench.spec.recipe import parse_recipe

        parse_recipe(spec.recipe, file=file, path="recipe")  # validated once, kept as given
    return spec


def load_spec(path: str | Path) -> Spec:
    """Load, merge bases of, and validate one spec file, given by its path or by its name in
    the spec library (``resnet50``, ``cifar/resnet56``: :mod:`resbench.spec.library`)."""
    from resbench.spec.library import resolve

    path = resolve(path)
    return parse_spec(load_raw(path), file=path)


# Folders and files under specs/ that are not single-network specs.
NOT_SPECS = frozenset({"suites", "spaces"})
NOT_SPEC_FILES = frozenset({"golden.yaml"})


def iter_spec_files(paths: Iterable[str | Path]) -> list[Path]:
    """Spec files named by ``paths``; a directory yields its spec files, recursively, skipping
    suites, search spaces and golden-number files (which are not specs)."""
    out: list[Path] = []
    for path in map(Path, paths):
        if not path.is_dir():
            out.append(path)
            continue
        for file in sorted(path.rglob("*")):
            rel = file.relative_to(path).parts
            if (file.suffix.lower() in SUFFIXES and file.name not in NOT_SPEC_FILES
                    and not NOT_SPECS.intersection(rel[:-1])):
                out.append(file)
    return out
