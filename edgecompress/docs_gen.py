"""docs/recipe.md, generated from the recipe schema so the docs cannot drift from the code."""

from __future__ import annotations

from typing import Any

from edgecompress.recipe import recipe_json_schema


def _type(prop: dict, defs: dict) -> str:
    if "$ref" in prop:
        return prop["$ref"].split("/")[-1]
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if "const" in prop:
        return f"`{prop['const']}`"
    if "anyOf" in prop:
        return " \\| ".join(_type(p, defs) for p in prop["anyOf"])
    if "oneOf" in prop:
        return " \\| ".join(_type(p, defs) for p in prop["oneOf"])
    if prop.get("type") == "array":
        return f"list of {_type(prop.get('items', {}), defs)}"
    return prop.get("type", "any")


def _default(prop: dict, required: bool) -> str:
    if required:
        return "required"
    if "default" not in prop:
        return "see its section" if "$ref" in prop else "built-in"
    value: Any = prop["default"]
    text = "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return f"`{text}`" if len(text) < 60 else "see schema"


def _section(title: str, schema: dict, defs: dict) -> list[str]:
    lines = [f"## {title}", ""]
    if schema.get("description"):
        lines += [" ".join(schema["description"].split()), ""]
    lines += ["| field | type | default | description |", "|---|---|---|---|"]
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        desc = " ".join((prop.get("description") or "").split())
        lines.append(f"| `{name}` | {_type(prop, defs)} | {_default(prop, name in required)} | {desc} |")
    return lines + [""]


def recipe_markdown() -> str:
    schema = recipe_json_schema()
    defs = schema.get("$defs", {})
    out = [
        "# Recipe reference",
        "",
        "Generated from the schema by `edgecompress schema --format markdown`; do not edit by hand.",
        "Unknown fields and wrong types are errors. Any field can be overridden on the command line with",
        "`--set section.field=value` (YAML value syntax).",
        "",
    ]
    out += _section("Recipe (top level)", schema, defs)
    for name in sorted(defs):
        out += _section(name, defs[name], defs)
    return "\n".join(out)
