"""Generate WhatLead's clients in other languages (TypeScript, Go) into build/gen/, as buf.gen.yaml says.

    python protos/generate_clients.py                 # every language whose plugins are installed
    python protos/generate_clients.py --language ts   # TypeScript only, failing without its plugin

protoc (grpcio-tools) compiles protos/ into an image and `buf generate` runs buf.gen.yaml's plugins on it,
so nothing is fetched from a remote registry. protovalidate's rules come from protos/buf when protos/
ships them, else from the pinned `protovalidate` package as protos/generate.py takes them. buf comes from
npm (`npm ci` in tests/node).
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
from generate import VALIDATE_PROTO, validate_descriptor_set  # noqa: E402

TEMPLATE = ROOT / "buf.gen.yaml"
BUF = ("tests/node/node_modules/.bin/buf", "tools/buf/node_modules/.bin/buf")
IMAGE = ROOT / "build" / "gen" / "whatlead.binpb"


def installed(command: str) -> bool:
    return (ROOT / command).is_file() or shutil.which(command) is not None


def language(plugin: dict[str, Any]) -> str:
    """What --require names: `ts` for protoc-gen-ts_proto, `go` for protoc-gen-go and protoc-gen-go-grpc."""
    name = Path(str(plugin["local"])).name.removeprefix("protoc-gen-")
    return name.split("_")[0].split("-")[0]


def buf() -> str:
    for path in BUF:
        if (ROOT / path).is_file():
            return str(ROOT / path)
    found = shutil.which("buf")
    if found is None:
        sys.exit("buf not found: run `npm ci` in tests/node")
    return found


def build_image() -> None:
    """protos/ compiled with every import and its comments (which the generated code carries)."""
    # protovalidate's rules come in as an import only: protos/generate.py checks protos/'s copy of them.
    sources = sorted(
        str(path)
        for path in (p.relative_to(PROTO_ROOT) for p in PROTO_ROOT.rglob("*.proto"))
        if path.parts[0] != "buf"
    )
    IMAGE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="whatlead-protovalidate-") as tmp:
        command = [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{resources.files('grpc_tools') / '_proto'}",
            f"--descriptor_set_out={IMAGE}",
            "--include_imports",
            "--include_source_info",
        ]
        if not (PROTO_ROOT / VALIDATE_PROTO).exists():
            validate = Path(tmp) / "validate.binpb"
            validate.write_bytes(validate_descriptor_set())
            command.append(f"--descriptor_set_in={validate}")
        result = subprocess.run([*command, *sources], cwd=PROTO_ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"protoc failed:\n{result.stderr}")


def input_filters(template: dict[str, Any]) -> list[str]:
    """The template's input paths as `buf generate` flags for the image, whose files are named from
    protos/ as their root."""
    flags = ["--exclude-path", "google/protobuf"]  # the image holds the well-known types as files of its own
    for given in template.get("inputs", []):
        for flag, key in (("--path", "paths"), ("--exclude-path", "exclude_paths")):
            for path in given.get(key, []):
                flags += [flag, str(Path(path).relative_to(PROTO_ROOT.name))]
    return flags


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--language",
        action="append",
        default=[],
        choices=["ts", "go"],
        help="generate only these (repeatable), and fail when one's plugin is not installed",
    )
    args = parser.parse_args(argv)
    template = yaml.safe_load(TEMPLATE.read_text())
    chosen = [p for p in template["plugins"] if not args.language or language(p) in args.language]
    plugins = [p for p in chosen if installed(str(p["local"]))]
    for plugin in chosen:
        if plugin not in plugins:
            print(f"skipped {language(plugin)}: {plugin['local']} is not installed", file=sys.stderr)
    if missing := sorted({language(p) for p in chosen if p not in plugins} & set(args.language)):
        sys.exit(f"plugins missing for: {', '.join(missing)}")
    if not plugins:
        sys.exit("no plugin of buf.gen.yaml is installed")
    for out in {p["out"] for p in plugins}:
        shutil.rmtree(ROOT / out, ignore_errors=True)  # a removed proto leaves no stale client
    build_image()
    inline = json.dumps({"version": template["version"], "plugins": plugins})
    command = [buf(), "generate", str(IMAGE), "--template", inline, *input_filters(template)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0 or result.stderr.strip():
        sys.exit(f"buf generate failed:\n{result.stderr}")
    for out in sorted({p["out"] for p in plugins}):
        print(f"generated {sum(1 for f in (ROOT / out).rglob('*') if f.is_file())} files into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
