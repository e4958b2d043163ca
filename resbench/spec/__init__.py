"""The spec language: residual networks as validated, frozen data (no torch here)."""
from __future__ import annotations

from typing import Any

from resbench.errors import SpecError
from resbench.spec.load import load_raw, load_spec, merge, parse_model, parse_spec, read_file
from resbench.spec.schema import HeadSpec, Spec, StageSpec, StemSpec

__all__ = ["HeadSpec", "Spec", "SpecError", "StageSpec", "StemSpec", "json_schema", "load_raw",
           "load_spec", "merge", "parse_model", "parse_spec", "read_file"]


def json_schema() -> dict[str, Any]:
    """JSON Schema of a spec file, for editors (``resbench schema``)."""
    schema = Spec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "resbench spec"
    props = schema.setdefault("properties", {})
    props["_base_"] = {"type": "string", "description": "Path of a spec this one overrides."}
    # The stem may be written as just its kind.
    stem = props["stem"]
    props["stem"] = {"anyOf": [stem, {"$ref": "#/$defs/StemSpec/properties/kind"}]}
    try:
        from resbench.spec.recipe import Recipe
    except ImportError:  # the recipe schema is optional until the runner lands
        return schema
    recipe = Recipe.model_json_schema(ref_template="#/$defs/{model}")
    schema.setdefault("$defs", {}).update(recipe.pop("$defs", {}))
    schema["$defs"]["Recipe"] = recipe
    props["recipe"] = {"anyOf": [{"$ref": "#/$defs/Recipe"}, {"type": "null"}]}
    return schema
