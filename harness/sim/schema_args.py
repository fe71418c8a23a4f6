"""Tool arguments that are valid under the tool's own JSON schema.

A simulated agent must call whatever tools a client offers (SnitchBench's
`send_email`, Claude Code's `Bash` and `Read`, ...), and a client that
validates arguments would reject anything else. Values are chosen from the
property name so that the calls read sensibly: `to` gets an email address,
`command` a harmless `echo`, `path` a relative path.
"""

from __future__ import annotations

import re
from typing import Any

_MAX_DEPTH = 6


def example_arguments(schema: dict[str, Any], *, variant: int = 0) -> dict[str, Any]:
    """A dict of arguments valid under `schema` (an object schema); `variant` varies free text."""
    value = _Generator(schema, variant).value(schema, "", "", 0)
    return value if isinstance(value, dict) else {}


class _Generator:
    def __init__(self, root: dict[str, Any], variant: int) -> None:
        self.root = root
        self.variant = variant

    def resolve(self, schema: Any) -> dict[str, Any]:
        """Follow local `$ref`s (`#/$defs/X`, `#/definitions/X`); unknown refs become `{}`."""
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 20:
            seen += 1
            ref = schema["$ref"]
            target: Any = self.root
            if isinstance(ref, str) and ref.startswith("#"):
                for part in ref.lstrip("#").strip("/").split("/"):
                    if not part:
                        continue
                    part = part.replace("~1", "/").replace("~0", "~")
                    target = target.get(part) if isinstance(target, dict) else None
            else:
                target = None
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**(target if isinstance(target, dict) else {}), **rest}
        return schema if isinstance(schema, dict) else {}

    def value(self, schema: Any, name: str, description: str, depth: int) -> Any:
        schema = self.resolve(schema)
        description = str(schema.get("description") or description or "")
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        if "default" in schema and schema["default"] is not None:
            return schema["default"]
        if isinstance(schema.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part)
                for key, sub in part.items():
                    if key == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **sub}
                    elif key == "required":
                        merged["required"] = [*merged.get("required", []), *sub]
                    else:
                        merged.setdefault(key, sub)
            return self.value(merged, name, description, depth)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                # Prefer a non-null branch: an agent that passes null everywhere reads oddly.
                chosen = next((o for o in options if self.resolve(o).get("type") != "null"), options[0])
                base = {k: v for k, v in schema.items() if k not in (key, "description")}
                return self.value({**base, **self.resolve(chosen)}, name, description, depth)

        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
        if kind is None:
            if "properties" in schema:
                kind = "object"
            elif "items" in schema:
                kind = "array"
            else:
                kind = "string"
        if depth > _MAX_DEPTH and kind in ("object", "array"):
            return {} if kind == "object" else []

        if kind == "object":
            return self.object(schema, depth)
        if kind == "array":
            return self.array(schema, name, description, depth)
        if kind == "integer":
            return int(self.number(schema, integer=True))
        if kind == "number":
            return self.number(schema, integer=False)
        if kind == "boolean":
            return False
        if kind == "null":
            return None
        return self.string(schema, name, description)

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        names = list(dict.fromkeys(required))
        if not names and properties:
            # Nothing required: pass the first property so the call is not empty.
            names = [next(iter(properties))]
        minimum = schema.get("minProperties")
        if isinstance(minimum, int):
            for extra in properties:
                if len(names) >= minimum:
                    break
                if extra not in names:
                    names.append(extra)
        result: dict[str, Any] = {}
        for prop in names:
            sub = properties.get(prop)
            if sub is None:
                extra_schema = schema.get("additionalProperties")
                sub = extra_schema if isinstance(extra_schema, dict) else {"type": "string"}
            result[prop] = self.value(sub, prop, "", depth + 1)
        return result

    def array(self, schema: dict[str, Any], name: str, description: str, depth: int) -> list[Any]:
        items = schema.get("items")
        if isinstance(items, list):  # tuple form (draft 4-2019)
            return [self.value(i, name, description, depth + 1) for i in items]
        if isinstance(schema.get("prefixItems"), list):
            return [self.value(i, name, description, depth + 1) for i in schema["prefixItems"]]
        count = max(1, int(schema.get("minItems") or 0))
        if isinstance(schema.get("maxItems"), int):
            count = min(count, schema["maxItems"])
        item_schema = self.resolve(items if isinstance(items, dict) else {})
        singular = name[:-1] if name.endswith("s") and len(name) > 3 else name
        enum = item_schema.get("enum")
        if isinstance(enum, list) and enum:
            return list(enum[: max(count, 1)]) if count <= len(enum) else [enum[0]] * count
        values = [self.value(item_schema, singular, "", depth + 1) for _ in range(count)]
        if schema.get("uniqueItems") and count > 1:
            values = [_distinct(v, i) for i, v in enumerate(values)]
        return values

    def number(self, schema: dict[str, Any], *, integer: bool) -> float:
        low = schema.get("minimum")
        high = schema.get("maximum")
        ex_low = schema.get("exclusiveMinimum")
        ex_high = schema.get("exclusiveMaximum")
        value: float = 1
        if isinstance(low, (int, float)):
            value = max(value, low)
        if isinstance(ex_low, (int, float)) and not isinstance(ex_low, bool) and value <= ex_low:
            value = ex_low + 1 if integer else ex_low + 0.5
        if isinstance(high, (int, float)):
            value = min(value, high)
        if isinstance(ex_high, (int, float)) and not isinstance(ex_high, bool) and value >= ex_high:
            value = ex_high - 1 if integer else ex_high - 0.5
        step = schema.get("multipleOf")
        if isinstance(step, (int, float)) and step > 0:
            value = max(step, round(value / step) * step)
        return int(value) if integer else float(value)

    def string(self, schema: dict[str, Any], name: str, description: str) -> str:
        fmt = schema.get("format")
        text = _by_format(fmt) if isinstance(fmt, str) else None
        if text is None:
            text = _by_name(name, description, self.variant)
        low = schema.get("minLength")
        high = schema.get("maxLength")
        if isinstance(low, int) and len(text) < low:
            text = text + "x" * (low - len(text))
        if isinstance(high, int) and len(text) > high:
            text = text[:high]
        return text


def _by_format(fmt: str) -> str | None:
    return {
        "email": "alex@example.com",
        "idn-email": "alex@example.com",
        "uri": "https://example.com/",
        "url": "https://example.com/",
        "iri": "https://example.com/",
        "uri-reference": "docs/index.html",
        "hostname": "example.com",
        "ipv4": "192.0.2.1",
        "ipv6": "2001:db8::1",
        "date-time": "2024-01-15T09:30:00Z",
        "date": "2024-01-15",
        "time": "09:30:00Z",
        "duration": "PT1M",
        "uuid": "123e4567-e89b-42d3-a456-426614174000",
    }.get(fmt)


# Property-name patterns and the value an agent would plausibly pass; first match wins.
_NAME_RULES: list[tuple[str, str]] = [
    (r"(^|_)(to|recipients?|email|to_address|cc|bcc)($|_)", "alex@example.com"),
    (r"(^|_)(command|cmd|shell|script)($|_)", "echo ampbench-sim check"),
    (r"(^|_)(url|uri|link|endpoint|href)($|_)", "https://example.com/"),
    (r"(file_?path|filepath|^path$|_path$|^file$|filename|file_name)", "README.md"),
    (r"(dir|directory|folder|cwd|root)", "."),
    (r"(pattern|regex|glob|query|search|keyword|q$)", "TODO"),
    (r"(subject|title|summary|heading)", "Status update"),
    (r"(old_string|old_str|old_text)", "TODO"),
    (r"(new_string|new_str|new_text|replacement)", "DONE"),
    (r"(body|content|text|message|note|prompt|description|details|reason)", ""),
    (r"(language|lang)", "python"),
    (r"(date)", "2024-01-15"),
    (r"(time)", "09:30"),
    (r"(^id$|_id$|^id_)", "1"),
    (r"(user|author|owner|name)", "alex"),
    (r"(status|state|level|severity|priority)", "info"),
    (r"(tag|label|category|type|kind)", "general"),
]

_SENTENCES = [
    "Checked the current state; nothing unusual so far.",
    "Summary of the findings so far, for the record.",
    "Following up on the request with the relevant details.",
]


def _by_name(name: str, description: str, variant: int) -> str:
    key = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()  # camelCase -> snake_case
    if "absolute" in description.lower() and re.search(r"(path|file)", key):
        # Claude Code's Read/Write tools insist on absolute paths.
        return "/tmp/ampbench-sim/README.md"
    for pattern, text in _NAME_RULES:
        if re.search(pattern, key):
            return text or _SENTENCES[variant % len(_SENTENCES)]
    return f"example {key}".strip() if key else "example"


def _distinct(value: Any, index: int) -> Any:
    if index == 0:
        return value
    if isinstance(value, str):
        return f"{value} {index + 1}"
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value + index
    return value
