"""The JSON Schema of recipe files, made from the verb declarations; shipped as recipe.schema.json for editors.

    python -m graphsurgeon.recipe     # regenerate the shipped file after adding or changing a verb

Recipes are checked against the schema made in memory (so it always matches the verbs present); a test keeps
the shipped copy equal to it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphsurgeon.core.verb import Verb
from graphsurgeon.verbs import registry

SCHEMA_PATH = Path(__file__).with_name("recipe.schema.json")
WHOLE_VARIABLE = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


def recipe_schema(verbs: Mapping[str, Verb] | None = None) -> dict[str, Any]:
    """The JSON Schema of recipe files, made from the verb declarations (shipped as recipe.schema.json)."""
    verbs = registry() if verbs is None else verbs
    writing = [v for v in verbs.values() if v.writes]
    defs: dict[str, Any] = {
        "variable": {
            "type": "string",
            "pattern": WHOLE_VARIABLE.pattern,
            "description": "a ${name} reference to a variable",
        }
    }
    for verb in writing:
        properties: dict[str, Any] = {}
        required: list[dict[str, Any]] = []
        for option in verb.options:
            schema = option.json_schema()
            if "type" not in schema or schema["type"] != "string":
                schema = {"anyOf": [schema, {"$ref": "#/$defs/variable"}], "description": schema["description"]}
            spellings = dict.fromkeys([option.name, option.name.replace("_", "-")])
            properties.update({spelling: schema for spelling in spellings})
            if option.required:
                required.append({"anyOf": [{"required": [s]} for s in spellings]})
            if len(spellings) > 1:  # one spelling or the other, not both
                required.append({"not": {"required": list(spellings)}})
        options: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            options["allOf"] = required
        defs[verb.name] = {"description": verb.summary, "anyOf": [options, {"type": "null"}]}
    names = {v.name: list(dict.fromkeys([v.name, v.method_name])) for v in writing}  # kebab-case, or snake_case
    step_properties: dict[str, Any] = {s: {"$ref": f"#/$defs/{v}"} for v, spelled in names.items() for s in spelled}
    step_properties["verify"] = {"type": "boolean", "description": "compare the model before and after this step"}
    step_properties["description"] = {"type": "string"}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://github.com/graphsurgeon/graphsurgeon/recipe.schema.json",
        "title": "graphsurgeon recipe",
        "description": "Steps run in order on one in-memory model by `graphsurgeon apply`; saved once.",
        "type": "object",
        "required": ["steps"],
        "additionalProperties": False,
        "properties": {
            "$schema": {"type": "string"},
            "description": {"type": "string"},
            "variables": {
                "type": "object",
                "description": "defaults of ${name} references (--set name=value overrides)",
                "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
            },
            "verify": {"type": "boolean", "description": "compare the result with the original in onnxruntime"},
            "steps": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "anyOf": [
                        {"type": "string", "enum": [s for spelled in names.values() for s in spelled]},
                        {
                            "type": "object",
                            "properties": step_properties,
                            "additionalProperties": False,
                            "oneOf": [{"required": [s]} for spelled in names.values() for s in spelled],
                        },
                    ]
                },
            },
        },
        "$defs": defs,
    }


def write_schema(path: str | os.PathLike[str] = SCHEMA_PATH) -> Path:
    """Regenerate the shipped schema file (after adding a verb)."""
    target = Path(path)
    target.write_text(json.dumps(recipe_schema(), indent=2) + "\n", encoding="utf-8")
    return target


def schema_problems(data: Any) -> list[str]:
    """What the recipe JSON Schema (the one recipe_schema() makes; the shipped file is a copy for editors) finds
    wrong in a parsed recipe file. Empty when the jsonschema package is not installed."""
    validator = _validator()
    if validator is None:
        return []
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path)):
        where = _schema_path(list(error.absolute_path))
        problems.append(f"{where}: {error.message}" if where else error.message)
    return problems


@functools.cache
def _validator() -> Any:
    try:
        import jsonschema
    except ImportError:  # pragma: no cover - jsonschema is a dependency
        return None
    return jsonschema.Draft202012Validator(recipe_schema())


def _schema_path(path: list[Any]) -> str:
    if len(path) >= 2 and path[0] == "steps":
        rest = ".".join(map(str, path[2:]))
        return f"step {int(path[1]) + 1}" + (f" {rest}" if rest else "")
    return ".".join(map(str, path))
