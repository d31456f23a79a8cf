#!/usr/bin/env python3
"""Checks the node's OpenAPI document and answers against it.

usage: check_openapi.py SPEC.json [SAMPLES.json]

SPEC.json must be a valid OpenAPI 3.1 document (openapi-spec-validator).
SAMPLES.json, when given, is a list of real answers
{"method", "path", "status", "body"}: each `path` must be documented for
`method` with `status`, and each JSON `body` must validate against that
response's schema. Exits non-zero, naming every failure.
"""

import json
import sys

from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

BASE = "urn:glassbox:openapi"


def pointer(*parts):
    return "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def main():
    spec_path = sys.argv[1]
    with open(spec_path) as f:
        spec = json.load(f)
    validate(spec)
    if spec.get("openapi") != "3.1.0":
        sys.exit(f"{spec_path}: openapi is {spec.get('openapi')!r}, not 3.1.0")
    if len(sys.argv) < 3:
        return
    with open(sys.argv[2]) as f:
        samples = json.load(f)
    registry = Registry().with_resource(
        BASE, Resource.from_contents(spec, default_specification=DRAFT202012)
    )
    failures = []
    for s in samples:
        method, path, status = s["method"].lower(), s["path"], str(s["status"])
        op = spec["paths"].get(path, {}).get(method)
        where = f"{method.upper()} {path} -> {status}"
        if op is None:
            failures.append(f"{where}: the operation is not documented")
            continue
        response = op["responses"].get(status)
        if response is None:
            failures.append(
                f"{where}: status not documented (documented: {sorted(op['responses'])})"
            )
            continue
        if s.get("body") is None:
            continue
        media = response.get("content", {}).get("application/json")
        if media is None:
            failures.append(f"{where}: a JSON body where none is documented")
            continue
        ref = "#" + "/" + pointer(
            "paths", path, method, "responses", status, "content", "application/json", "schema"
        )
        validator = OAS31Validator({"$ref": BASE + ref}, registry=registry)
        errors = sorted(validator.iter_errors(s["body"]), key=lambda e: list(e.path))
        for e in errors[:5]:
            failures.append(f"{where}: at /{pointer(*e.path)}: {e.message[:300]}")
    for f in failures:
        print(f"check_openapi: {f}", file=sys.stderr)
    if failures:
        sys.exit(1)
    print(f"check_openapi: {spec_path} is valid OpenAPI 3.1; {len(samples)} answers match it")


if __name__ == "__main__":
    main()
