"""Generate the Python stubs of every .proto under protos/, in place, next to their sources.

    python protos/generate.py          # regenerate (deletes stale generated files first)
    python protos/generate.py --check  # generate into a temp dir; exit 1 listing files that differ

For each `whatlead/<context>/v1/<name>.proto` it writes `<name>_pb2.py` and `<name>_pb2.pyi`
(grpcio-tools + mypy-protobuf) and, when the file declares a service, `<name>_pb2_grpc.py` and
`<name>_pb2_grpc.pyi`; plus an empty `__init__.py` in every package directory. The output depends only on
the .proto files and the pinned tool versions, so CI can compare it byte for byte.

protos/ also ships the third-party files our protos import, so that any client (and buf) can build them:
`google/api/field_behavior.proto` and protovalidate's rules, `buf/validate/validate.proto`. The rules'
stubs are generated from the pinned `protovalidate` package's own descriptor (read by protoc through
`--descriptor_set_in`, the copy in protos/ hidden from it), so that they match what the validator reads;
`--check` also fails when the copy in protos/ declares other rules than that descriptor.

`google/rpc/{status,error_details,code}.proto` are shipped for clients in other languages, which decode an
error's details with them (docs/contracts.md, "Errors"); they are copies of the pinned
googleapis-common-protos package's files, and nothing is generated from them here: that package provides
their Python modules. Only protos/whatlead is read.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import subprocess
import sys
import tempfile
from importlib import resources
from pathlib import Path

from google.protobuf.descriptor_pb2 import FileDescriptorProto, FileDescriptorSet

PROTO_ROOT = Path(__file__).resolve().parent
PACKAGE = "whatlead"
VALIDATE_PROTO = "buf/validate/validate.proto"
# Top-level packages generate() owns: ours, and protovalidate's rules.
PACKAGES = (PACKAGE, VALIDATE_PROTO.split("/")[0])
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
_SERVICE = re.compile(r"^\s*service\s+\w+", re.MULTILINE)


def proto_files() -> list[Path]:
    """Every .proto below protos/whatlead, relative to protos/, in a stable order."""
    return sorted(p.relative_to(PROTO_ROOT) for p in (PROTO_ROOT / PACKAGE).rglob("*.proto"))


def _plugin(name: str) -> str:
    """The protoc plugin installed next to this interpreter (the venv), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if found is None:
        sys.exit(f"{name} not found: install the dev dependencies (mypy-protobuf)")
    return found


def validate_descriptor_set() -> bytes:
    """A FileDescriptorSet of buf/validate/validate.proto and its google/protobuf imports, as the installed
    protovalidate package declares them (its message classes carry their file's descriptor)."""
    import protovalidate
    from protobuf import DescFile

    files = FileDescriptorSet()
    seen: set[str] = set()

    def add(file: DescFile) -> None:  # dependencies first, as a descriptor set lists them
        if file.name in seen:
            return
        seen.add(file.name)
        for dependency in file.dependencies:
            add(dependency)
        files.file.add().ParseFromString(file.proto.to_binary())

    validate_file = protovalidate.ViolationPb.desc().file
    if validate_file.name != VALIDATE_PROTO:
        sys.exit(f"protovalidate describes {validate_file.name}, expected {VALIDATE_PROTO}")
    add(validate_file)
    return files.SerializeToString(deterministic=True)


def _sources_without_validate(into: Path) -> Path:
    """A view of protos/ without its copy of buf/validate, so protoc takes those rules from the descriptor
    set (a .proto on the include path would win over it)."""
    into.mkdir()
    for entry in PROTO_ROOT.iterdir():
        if entry.is_dir() and entry.name != VALIDATE_PROTO.split("/")[0]:
            (into / entry.name).symlink_to(entry, target_is_directory=True)
    return into


def _protoc(args: list[str], descriptor_set: Path | None, sources: Path = PROTO_ROOT) -> None:
    include = resources.files("grpc_tools") / "_proto"
    command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{sources}", f"-I{include}"]
    if descriptor_set is not None:
        command.append(f"--descriptor_set_in={descriptor_set}")
    command += args
    result = subprocess.run(command, cwd=sources, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"protoc failed:\n{result.stderr}")
    # mypy-protobuf reports each file it writes on stderr; anything else (unused imports, ...) is an error
    # here, to keep the protos clean.
    lines = result.stderr.splitlines()
    noise = [line for line in lines if line.strip() and not line.startswith("Writing mypy")]
    if noise:
        sys.exit("protoc warnings:\n" + "\n".join(noise))


def generate(out: Path) -> None:
    """Write every generated file for the current .proto sources under `out`."""
    protos = proto_files()
    if not protos:
        sys.exit(f"no .proto files under {PROTO_ROOT / PACKAGE}")
    names = [VALIDATE_PROTO, *(str(p) for p in protos)]
    with tempfile.TemporaryDirectory(prefix="whatlead-protovalidate-") as tmp:
        descriptor_set = Path(tmp) / "validate.binpb"
        descriptor_set.write_bytes(validate_descriptor_set())
        sources = _sources_without_validate(Path(tmp) / "sources")
        _protoc(
            [
                f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
                f"--python_out={out}",
                f"--mypy_out={out}",
                *names,
            ],
            descriptor_set,
            sources,
        )
        with_services = [str(p) for p in protos if _SERVICE.search((PROTO_ROOT / p).read_text())]
        if with_services:
            _protoc(
                [
                    f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
                    f"--grpc_python_out={out}",
                    f"--mypy_grpc_out={out}",
                    *with_services,
                ],
                descriptor_set,
                sources,
            )
    for package_dir in sorted({d for name in names for d in _package_dirs(Path(name))}):
        (out / package_dir / "__init__.py").write_text("")


def _package_dirs(proto: Path) -> list[Path]:
    """protos-relative package directories of a proto: whatlead, whatlead/<ctx>, whatlead/<ctx>/v1."""
    parent = proto.parent
    return [parent, *[p for p in parent.parents if p != Path(".")]]


def generated_files(root: Path) -> set[Path]:
    """Files under root/whatlead and root/buf that generate() owns (stubs and package markers), relative
    to root."""
    found = set()
    for package in PACKAGES:
        for path in (root / package).rglob("*"):
            if (
                path.is_file()
                and "__pycache__" not in path.parts
                and (path.name.endswith(GENERATED_SUFFIXES) or path.name == "__init__.py")
            ):
                found.add(path.relative_to(root))
    return found


def remove_stale(root: Path) -> None:
    """Delete every previously generated file and directories left empty, so removed protos leave nothing."""
    for relative in generated_files(root):
        (root / relative).unlink()
    directories = [d for package in PACKAGES for d in (root / package).rglob("*")]
    for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
        if directory.is_dir() and directory.name == "__pycache__":
            shutil.rmtree(directory)
        elif directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()


def _rules_only(file: FileDescriptorProto) -> FileDescriptorProto:
    """The file without what differs between builds of the same rules: its file options (languages'
    packages) and the fields' derived JSON names."""
    stripped = FileDescriptorProto.FromString(file.SerializeToString())
    stripped.ClearField("options")
    stripped.ClearField("source_code_info")
    messages = list(stripped.message_type)
    while messages:
        message = messages.pop()
        for field in [*message.field, *message.extension]:
            field.ClearField("json_name")
        messages.extend(message.nested_type)
    for field in stripped.extension:
        field.ClearField("json_name")
    return stripped


def vendored_validate_problem() -> str | None:
    """Why protos/buf/validate/validate.proto does not declare the pinned protovalidate's rules, or None."""
    with tempfile.TemporaryDirectory(prefix="whatlead-validate-") as tmp:
        built = Path(tmp) / "vendored.binpb"
        _protoc([f"--descriptor_set_out={built}", VALIDATE_PROTO], None)
        vendored = FileDescriptorSet.FromString(built.read_bytes()).file[0]
    pinned = FileDescriptorSet.FromString(validate_descriptor_set())
    expected = next(f for f in pinned.file if f.name == VALIDATE_PROTO)
    if _rules_only(vendored) != _rules_only(expected):
        return (
            f"protos/{VALIDATE_PROTO} is not the version the pinned protovalidate package declares: "
            "copy that release's file from github.com/bufbuild/protovalidate"
        )
    return None


def check() -> int:
    problem = vendored_validate_problem()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="whatlead-proto-") as tmp:
        fresh = Path(tmp)
        generate(fresh)
        expected = generated_files(fresh)
        actual = generated_files(PROTO_ROOT)
        problems = [f"missing  {p}" for p in sorted(expected - actual)]
        problems += [f"stale    {p}" for p in sorted(actual - expected)]
        problems += [
            f"differs  {p}"
            for p in sorted(expected & actual)
            if not filecmp.cmp(fresh / p, PROTO_ROOT / p, shallow=False)
        ]
    if problems:
        print("generated stubs are out of date with protos/ (run `make proto`):", file=sys.stderr)
        for line in problems:
            print(f"  protos/{line.split(maxsplit=1)[1]}  ({line.split()[0]})", file=sys.stderr)
        return 1
    print(f"generated stubs are up to date ({len(expected)} files)")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="fail when the stubs in protos/ are stale")
    args = parser.parse_args(argv)
    if args.check:
        return check()
    remove_stale(PROTO_ROOT)
    generate(PROTO_ROOT)
    print(f"generated {len(generated_files(PROTO_ROOT))} files from {len(proto_files())} protos")
    return 0


if __name__ == "__main__":
    sys.exit(main())
