"""Print the image's requirements: pyproject.toml's dependencies plus those of the extras named in
$EXTRAS (comma-separated; ``mlpipe[a,b]`` extras are expanded), one per line, sorted.

docker/Dockerfile installs the dependency layer from this list, not from pyproject.toml itself,
so an edit to pyproject.toml that leaves the dependencies alone (a marker, a tool setting)
reuses the torch and dependency layers instead of reinstalling them.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    optional: dict[str, list[str]] = project.get("optional-dependencies", {})
    name = re.escape(project["name"])
    found: set[str] = set(project.get("dependencies", []))
    todo, seen = list(extras), set()
    while todo:
        extra = todo.pop()
        if extra in seen:
            continue
        if extra not in optional:
            sys.exit(f"requirements.py: no extra {extra!r} in {pyproject} "
                     f"(it has: {', '.join(sorted(optional))})")
        seen.add(extra)
        for req in optional[extra]:
            own = re.fullmatch(rf"\s*{name}\[([^\]]*)\]\s*", req)
            if own:
                todo.extend(e.strip() for e in own.group(1).split(",") if e.strip())
            else:
                found.add(req)
    return sorted(found)


if __name__ == "__main__":
    path = Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml")
    wanted = [e.strip() for e in os.environ.get("EXTRAS", "").split(",") if e.strip()]
    print("\n".join(requirements(path, wanted)))
