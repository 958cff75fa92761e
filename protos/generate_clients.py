"""Generate WhatLead's clients in other languages (TypeScript, Go) into build/gen/, as buf.gen.yaml says.

    python protos/generate_clients.py              # every plugin of buf.gen.yaml that is installed
    python protos/generate_clients.py --require ts # ...and fail unless the TypeScript one is

protoc (grpcio-tools) compiles protos/ into an image, with the protovalidate rules taken from the pinned
`protovalidate` package as protos/generate.py does, and `buf generate` runs buf.gen.yaml's plugins on that
image. So no remote registry is needed; buf comes from npm (`npm ci` in tests/node). A plugin that is not
installed is left out and named; `--require` makes that an error.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

PROTO_ROOT = Path(__file__).resolve().parent
ROOT = PROTO_ROOT.parent
sys.path.insert(0, str(PROTO_ROOT))
from generate import VALIDATE_PROTO, proto_files, validate_descriptor_set  # noqa: E402

TEMPLATE = ROOT / "buf.gen.yaml"
NODE_BIN = ROOT / "tests" / "node" / "node_modules" / ".bin"
IMAGE = ROOT / "build" / "gen" / "whatlead.binpb"


def installed(command: str) -> bool:
    return (ROOT / command).is_file() or shutil.which(command) is not None


def language(plugin: dict[str, Any]) -> str:
    """`ts` for protoc-gen-ts_proto, `go` for protoc-gen-go and protoc-gen-go-grpc: what --require names."""
    name = Path(str(plugin["local"])).name.removeprefix("protoc-gen-")
    return name.split("_")[0].split("-")[0]


def buf() -> str:
    found = NODE_BIN / "buf"
    if found.exists():
        return str(found)
    on_path = shutil.which("buf")
    if on_path is None:
        sys.exit("buf not found: run `npm ci` in tests/node")
    return on_path


def build_image() -> None:
    """protos/ compiled, with source info (the comments the generated code carries) and every import."""
    IMAGE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="whatlead-protovalidate-") as tmp:
        validate = Path(tmp) / "validate.binpb"
        validate.write_bytes(validate_descriptor_set())
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{resources.files('grpc_tools') / '_proto'}",
            f"--descriptor_set_in={validate}",
            f"--descriptor_set_out={IMAGE}",
            "--include_imports",
            "--include_source_info",
            *(str(p) for p in proto_files()),
        ]
        result = subprocess.run(command, cwd=PROTO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"protoc failed:\n{result.stderr}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--require", action="append", default=[], metavar="LANGUAGE", help="ts or go: fail without its plugin"
    )
    args = parser.parse_args(argv)
    template = yaml.safe_load(TEMPLATE.read_text())
    plugins = [p for p in template["plugins"] if installed(str(p["local"]))]
    missing = {language(p): str(p["local"]) for p in template["plugins"] if p not in plugins}
    for name, plugin in missing.items():
        print(f"skipped {name}: {plugin} is not installed", file=sys.stderr)
    if required := sorted(set(args.require) & missing.keys()):
        sys.exit(f"required plugins missing: {', '.join(required)}")
    if not plugins:
        sys.exit("no plugin of buf.gen.yaml is installed")
    for out in {p["out"] for p in plugins}:
        shutil.rmtree(ROOT / out, ignore_errors=True)  # protos removed since leave no stale client
    build_image()
    # Only our files: the imports (google/protobuf, buf/validate) come with each language's runtime.
    inline = {"version": template["version"], "plugins": plugins}
    command = [buf(), "generate", str(IMAGE), "--template", json.dumps(inline), "--path", "whatlead"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"buf generate failed:\n{result.stderr}")
    for out in sorted({p["out"] for p in plugins}):
        print(f"generated {sum(1 for f in (ROOT / out).rglob('*') if f.is_file())} files into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
