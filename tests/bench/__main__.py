"""Run every benchmark module here (or those named: `python -m tests.bench gate_submit_intent`)."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import sys

import tests.bench as package


def main(names: list[str]) -> None:
    modules = names or sorted(
        m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")
    )
    for name in modules:
        module = importlib.import_module(f"{package.__name__}.{name}")
        print(f"\n=== {name} ===", flush=True)
        result = module.main()
        if inspect.iscoroutine(result):
            asyncio.run(result)


if __name__ == "__main__":
    main(sys.argv[1:])
