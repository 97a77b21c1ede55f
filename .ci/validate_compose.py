"""Validate a compose file against Compose specification JSON schemas (see .ci/validate-compose).

The file is validated as written and after ``${VAR}`` interpolation (``${VAR}``, ``${VAR:-x}``,
``${VAR-x}``, ``${VAR:?msg}``, ``${VAR?msg}``, ``$$``) with the values of an env file; empty
values (the secrets) are replaced by a placeholder, as a filled-in ``.env`` would.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml
from jsonschema.validators import (
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
    validator_for,
)

VAR = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))")


def read_env(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            out[key.strip()] = value.strip() or "placeholder-secret"
    return out


def interpolate(node, env: dict[str, str]):
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if not isinstance(node, str):
        return node

    def sub(m: re.Match) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, arg = m.group(2), m.group(3)
        value = env.get(name)
        if op in (":-", "-"):
            return value if value not in (None, "") or (op == "-" and value is not None) else arg
        if op in (":?", "?") and (value is None or (op == ":?" and value == "")):
            raise SystemExit(f"${{{name}}} is required: {arg}")
        return value or ""

    return VAR.sub(sub, node)


def validate(doc, schema: dict) -> list[str]:
    declared = schema.get("$schema", "")
    drafts = {"2020-12": Draft202012Validator, "2019-09": Draft201909Validator, "draft-07": Draft7Validator}
    cls = next((v for key, v in drafts.items() if key in declared), None) or validator_for(schema)
    cls.check_schema(schema)
    errors = sorted(cls(schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("compose", type=Path)
    parser.add_argument("--env", type=Path, required=True)
    parser.add_argument("--schema", action="append", required=True, metavar="LABEL=PATH")
    args = parser.parse_args()
    raw = yaml.safe_load(args.compose.read_text())
    resolved = interpolate(raw, read_env(args.env))
    failed = False
    for spec in args.schema:
        label, path = spec.rsplit("=", 1)
        schema = json.loads(Path(path).read_text())
        for stage, doc in (("as written", raw), (f"interpolated with {args.env}", resolved)):
            errors = validate(doc, schema)
            status = "valid" if not errors else f"{len(errors)} error(s)"
            print(f"{args.compose} ({stage}) against {label} [{schema.get('$schema', '?')}]: {status}")
            for error in errors:
                print(f"  {error}")
            failed |= bool(errors)
    services = raw.get("services", {})
    print(f"{len(services)} services ({', '.join(services)}), volumes: {', '.join(raw.get('volumes', {}))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
