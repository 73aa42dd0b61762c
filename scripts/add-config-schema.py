#!/usr/bin/env python3
"""Add a config schema to a built check component, for toolchains that
cannot emit the custom section themselves (componentize-py, jco).

    python3 scripts/add-config-schema.py check.wasm schema.json [-o out.wasm]

The schema (docs/writing-checks.md, "Declaring the config") is checked for
the shape `vigil validate` reads, then appended to the component as a
custom section named `vigil:config-schema`: a component may carry custom
sections anywhere, and nothing else in the file changes. Without -o the
file is rewritten in place (through a temporary file and a rename). Needs
only the Python standard library.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

SECTION = "vigil:config-schema"
KINDS = {"string", "bool", "integer", "number", "duration", "size", "port", "url", "host", "path"}
COMPONENT_PREAMBLE = b"\0asm\x0d\0\x01\0"


def leb128(n):
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def check_schema(schema):
    if not isinstance(schema, dict) or schema.get("version") != 1:
        raise ValueError('the schema must be an object with "version": 1')
    keys = schema.get("keys")
    if not isinstance(keys, list):
        raise ValueError('"keys" must be a list')
    seen = set()
    for i, key in enumerate(keys):
        where = f"keys[{i}]"
        if not isinstance(key, dict) or not isinstance(key.get("name"), str) or not key["name"]:
            raise ValueError(f'{where}: needs a "name"')
        if key.get("kind") not in KINDS:
            raise ValueError(f'{where} ({key["name"]}): "kind" must be one of {sorted(KINDS)}')
        if key["name"] in seen:
            raise ValueError(f'{where}: "{key["name"]}" is declared twice')
        seen.add(key["name"])
        if key.get("prefix") and not key["name"].endswith("."):
            raise ValueError(f'{where}: a prefix ends in "." (e.g. "header.")')
        if "default" in key and not isinstance(key["default"], str):
            raise ValueError(f'{where}: "default" is written as in the manifest, a string')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("component")
    parser.add_argument("schema")
    parser.add_argument("-o", "--output")
    args = parser.parse_args()

    with open(args.schema, "rb") as f:
        schema = json.load(f)
    check_schema(schema)
    with open(args.component, "rb") as f:
        wasm = f.read()
    if not wasm.startswith(COMPONENT_PREAMBLE):
        sys.exit(f"{args.component}: not a component (build it first, then add the schema)")

    name = SECTION.encode()
    data = json.dumps(schema, separators=(",", ":")).encode()
    payload = leb128(len(name)) + name + data
    section = b"\0" + leb128(len(payload)) + payload

    output = args.output or args.component
    directory = os.path.dirname(os.path.abspath(output))
    with tempfile.NamedTemporaryFile(dir=directory, delete=False) as tmp:
        tmp.write(wasm + section)
    shutil.copymode(args.component, tmp.name)
    os.replace(tmp.name, output)


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError, json.JSONDecodeError) as err:
        sys.exit(f"add-config-schema: {err}")
