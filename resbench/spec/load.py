"""Reading spec-language files: safe YAML/JSON, ``_base_`` inheritance, and turning validation
failures into a :class:`SpecError` that names the file, the field path and what is allowed."""
from __future__ import annotations

import json
import os
import re
import stat
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from resbench.errors import QUOTE_LIMIT, SpecError, check_path_text, clip, join_path, shown, unknown
from resbench.spec.merge import merge
from resbench.spec.schema import ShapeError, Spec

BASE_KEY = "_base_"
SUFFIXES = (".yaml", ".yml", ".json")

# Bounds on what one file may hold, far above any real spec, so that hostile input ends in a
# clear error in bounded time and memory (never a RecursionError, a hang or gigabytes).
MAX_FILE_BYTES = 1 << 20
"""Largest spec-language file read (1 MiB; the library's largest spec is about 2 KB)."""
MAX_DEPTH = 64
"""Deepest nesting of mappings and lists in a file (a spec nests about five levels)."""
MAX_VALUES = 100_000
"""Most values (mapping entries, list items, scalars) a YAML file may expand to, aliases
included: a "billion laughs" file is refused while it is composed, before it is built."""
MAX_BASE_CHAIN = 32
"""Longest ``_base_`` chain (a file, its base, that base's base, ...)."""


def read_file(path: str | Path) -> dict[str, Any]:
    """One file's top-level mapping, parsed safely (YAML never constructs objects).

    Only a regular file of at most :data:`MAX_FILE_BYTES` is opened (a FIFO or a device is
    refused after ``stat``, without reading); YAML and JSON nested deeper than
    :data:`MAX_DEPTH`, YAML expanding to more than :data:`MAX_VALUES` values, duplicate YAML
    keys, integers too long to convert and strings with lone surrogates are refused with the
    file (and, where known, the line or field path)."""
    path = Path(path)
    check_path_text(str(path), what="the file name", file=None)
    _check_regular(_stat(path), path)  # before anything opens it: a FIFO would block
    if path.suffix.lower() not in SUFFIXES:
        raise SpecError("unsupported file type", file=path, value=path.suffix, allowed=SUFFIXES)
    text = _read_text(path)
    if path.suffix.lower() == ".json":
        _check_json_depth(text, path)
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text, object_pairs_hook=_json_object)
        else:
            data = _BoundedLoader(text).load()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise SpecError(f"invalid YAML: {clip(str(exc.problem))}{where}", file=path) from None
    except (yaml.YAMLError, json.JSONDecodeError) as exc:
        raise SpecError(f"invalid {path.suffix[1:].upper()}: {clip(str(exc))}", file=path) from None
    except ValueError as exc:  # int(): more than sys.get_int_max_str_digits(); bad timestamps
        raise SpecError(f"invalid {path.suffix[1:].upper()}: {_value_problem(exc)}",
                        file=path) from None
    except (AttributeError, TypeError, IndexError, KeyError) as exc:
        # PyYAML's constructors of explicit tags (!!timestamp x, ...) fail on malformed values
        raise SpecError(f"invalid YAML: a tagged value cannot be built ({type(exc).__name__})",
                        file=path) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise SpecError(f"the top level must be a mapping, not {type(data).__name__}", file=path)
    check_values(data, file=path)
    return data


def _stat(path: Path) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        raise SpecError("file not found", file=path) from None
    except (OSError, ValueError) as exc:
        raise SpecError(f"cannot read file: {_os_problem(exc)}", file=path) from None


def _read_text(path: Path) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
        with os.fdopen(fd, "rb") as handle:
            _check_regular(os.fstat(handle.fileno()), path)  # replaced since the stat
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise SpecError(f"cannot read file: {_os_problem(exc)}", file=path) from None
    if len(raw) > MAX_FILE_BYTES:
        raise SpecError(f"file is larger than {MAX_FILE_BYTES // 2**20} MiB, the most a spec, "
                        "recipe, suite or space file may be", file=path)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(f"not UTF-8 text (byte {exc.start} is {raw[exc.start:exc.start + 1]!r})",
                        file=path) from None


def _check_regular(info: os.stat_result, path: Path) -> None:
    if stat.S_ISDIR(info.st_mode):
        raise SpecError("is a folder, not a file", file=path)
    if not stat.S_ISREG(info.st_mode):
        raise SpecError("not a regular file (a FIFO, socket or device); spec, recipe, suite and "
                        "space files must be regular files", file=path)
    if info.st_size > MAX_FILE_BYTES:
        raise SpecError(f"file is {info.st_size:,} bytes; a spec, recipe, suite or space file "
                        f"may be at most {MAX_FILE_BYTES // 2**20} MiB", file=path)


def _os_problem(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return clip(str(exc))


def _value_problem(exc: ValueError) -> str:
    text = str(exc)
    if "integer string conversion" in text:
        return (f"an integer literal has more than {sys.get_int_max_str_digits()} digits "
                "(the longest Python converts)")
    return clip(text)


class _Refused(yaml.MarkedYAMLError):
    """A YAML document over a bound (nesting, expanded size, recursive alias)."""


def _construct_timestamp(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    """PyYAML's timestamp, refusing what its pattern does not match (``!!timestamp x`` would
    raise AttributeError inside PyYAML)."""
    if loader.timestamp_regexp.match(loader.construct_scalar(node)) is None:
        raise yaml.constructor.ConstructorError(None, None, "not a timestamp: "
                                                f"{shown(node.value)}", node.start_mark)
    return yaml.SafeLoader.construct_yaml_timestamp(loader, node)


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and bounds nesting and alias expansion.

    Composition is PyYAML's recursion, so nesting is counted on the way down (refused at
    :data:`MAX_DEPTH`, far below Python's recursion limit); each composed node's expanded size
    (an alias counts its anchor's whole size again) is summed on the way up and refused past
    :data:`MAX_VALUES`, so nothing is built from an alias bomb."""

    yaml_constructors = {**yaml.SafeLoader.yaml_constructors,
                         "tag:yaml.org,2002:timestamp": _construct_timestamp}

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self._depth = 0
        self._sizes: dict[int, int] = {}

    def load(self) -> Any:
        try:
            return self.get_single_data()
        finally:
            self.dispose()

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self._depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark
            raise _Refused(None, None, f"nested deeper than {MAX_DEPTH} levels", mark)
        if self.check_event(yaml.AliasEvent):
            target = self.anchors.get(self.peek_event().anchor)
            if target is not None and id(target) not in self._sizes:
                raise _Refused(None, None, "an alias refers to a value that contains it (a "
                               "recursive structure)", self.peek_event().start_mark)
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if id(node) not in self._sizes:
            self._sizes[id(node)] = self._size(node)
        return node

    def _size(self, node: yaml.Node) -> int:
        if isinstance(node, yaml.ScalarNode):
            return 1
        children = node.value if isinstance(node, yaml.SequenceNode) else \
            [n for pair in node.value for n in pair]
        size = 1 + sum(self._sizes[id(child)] for child in children)
        if size > MAX_VALUES:
            raise _Refused(None, None, f"the document expands to more than {MAX_VALUES:,} "
                           "values (YAML aliases repeat what they name)", node.start_mark)
        return size

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                except TypeError:  # unhashable: PyYAML refuses it below
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {shown(key)} (a key may appear once in a "
                        "mapping)", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object; a key given twice is refused (``json`` would keep the last silently)."""
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {shown(key)} (a key may appear once in an object)")
        out[key] = value
    return out


def _check_json_depth(text: str, path: Path) -> None:
    """Refuse JSON nested deeper than MAX_DEPTH before ``json`` recurses into it."""
    depth = 0
    for match in _JSON_TOKENS.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line = text.count("\n", 0, match.start()) + 1
                raise SpecError(f"invalid JSON: nested deeper than {MAX_DEPTH} levels "
                                f"(line {line})", file=path)
        elif token in "]}":
            depth -= 1


_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"?|[\[\]{}]')


def check_values(data: Any, *, file: str | Path | None = None, path: str = "") -> None:
    """Refuse, with its field path, a value nested deeper than :data:`MAX_DEPTH` (aliases can
    nest what they name) or a string that is not valid text (a lone UTF-16 surrogate, from a
    ``\\ud800`` escape), which no file, terminal or report could hold later. Iterative."""
    stack: list[tuple[Any, str, int]] = [(data, path, 0)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value, file, where)
            continue
        if depth > MAX_DEPTH:
            raise SpecError(f"nested deeper than {MAX_DEPTH} levels", file=file, path=where)
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    _check_text(key, file, where)
                stack.append((item, join_path(where, str(key)[:QUOTE_LIMIT]), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]", depth + 1) for i, item in enumerate(value))


def _check_text(text: str, file: Any, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SpecError(f"a lone UTF-16 surrogate ({text[exc.start]!a}) at character "
                        f"{exc.start} is not valid text", file=file, path=where,
                        value=text) from None


def load_raw(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A file's mapping with its ``_base_`` chain merged in (the file's own fields win).

    ``name`` is never inherited: a file without one is named after its stem. A chain longer
    than :data:`MAX_BASE_CHAIN` files is refused."""
    path = Path(path).resolve()
    if path in _seen:
        chain = " -> ".join(p.name for p in (*_seen, path))
        raise SpecError(f"_base_ inheritance forms a cycle: {clip(chain)}", file=_seen[-1],
                        path=BASE_KEY)
    if len(_seen) >= MAX_BASE_CHAIN:
        raise SpecError(f"_base_ chain is longer than {MAX_BASE_CHAIN} files (from "
                        f"{_seen[0].name}); merge some of them", file=_seen[-1], path=BASE_KEY)
    data = read_file(path)
    base = data.pop(BASE_KEY, None)
    if base is not None:
        if not isinstance(base, str) or not base:
            raise SpecError(f"_base_ must be a relative or absolute file path, got {shown(base)}",
                            file=path, path=BASE_KEY, value=base)
        check_path_text(base, what="_base_", file=path, path=BASE_KEY)
        base_path = (path.parent / base).resolve()
        if not base_path.exists():
            raise SpecError(f"base file not found: {shown(str(base_path))}", file=path,
                            path=BASE_KEY, value=base)
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


MAX_PROBLEMS = 10
"""Problems one validation error lists (the rest are counted)."""


def spec_error_from_validation(exc: ValidationError, model: type[BaseModel], *,
                               file: str | Path | None = None, prefix: str = "") -> SpecError:
    """A pydantic ``ValidationError`` as one :class:`SpecError`: unknown fields (with their
    did-you-mean) first, then the other problems in the schema's order; the first is the
    error's own path and message, up to :data:`MAX_PROBLEMS` more are listed, the rest counted."""
    errors = exc.errors(include_url=False)
    # An error inside a list item also fails the list itself; report only the innermost.
    locs = [tuple(e["loc"]) for e in errors]
    errors = [e for e, loc in zip(errors, locs)
              if not any(len(o) > len(loc) and o[:len(loc)] == loc for o in locs)]
    errors.sort(key=lambda e: e["type"] != "extra_forbidden")  # stable: schema order otherwise
    problems = [_problem(err, model, file, prefix) for err in errors[:MAX_PROBLEMS + 1]]
    first, rest = problems[0], problems[1:]
    return first._copy(more=[(p.path, _without_where(p)) for p in rest],
                       hidden=len(errors) - len(problems))


def _without_where(error: SpecError) -> str:
    """A further problem, shortly: its message and did-you-mean, without the allowed list."""
    hint = f"; did you mean {shown(error.suggestion)}?" if error.suggestion else ""
    return error.message + hint


def _problem(err: Any, model: type[BaseModel], file: str | Path | None, prefix: str) -> SpecError:
    """One pydantic error as a located SpecError."""
    shape = (err.get("ctx") or {}).get("error")
    if isinstance(shape, ShapeError):
        return SpecError(shape.message, file=file, path=join_path(prefix, shape.path),
                         value=shape.value, allowed=shape.allowed)
    loc = tuple(part for part in err["loc"] if not _is_union_tag(part))
    path = join_path(prefix, format_path(loc))
    kind, value = err["type"], err.get("input")
    if kind == "extra_forbidden":
        return unknown("field", loc[-1], sorted(_fields_at(model, loc[:-1])), file=file,
                       path=path)
    if kind == "missing":
        return SpecError("required field is missing", file=file, path=path)
    allowed = _allowed_at(model, loc)
    if allowed is not None and kind in ("literal_error", "enum"):
        return unknown("value", value, allowed, file=file, path=path)
    message = clip(err["msg"].removeprefix("Value error, "))
    return SpecError(f"{message}, got {shown(value)}", file=file, path=path, value=value)


def format_path(loc: tuple[Any, ...]) -> str:
    """``("stages", 2, "shortcut")`` → ``"stages[2].shortcut"``."""
    out = ""
    for part in loc:  # a key of any length may be misspelt: each is quoted bounded
        out = f"{out}[{part}]" if isinstance(part, int) else join_path(out, clip(str(part), 60))
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
    if get_origin(annotation) is typing.Annotated:
        return _flatten(get_args(annotation)[0])
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
        if get_origin(candidate) is dict:  # per-block settings by index
            return get_args(candidate)[1]
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
