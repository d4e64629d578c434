"""constraints.txt (written by scripts/lock) pins every runtime dependency of hookbus[fast]:
each one pyproject.toml names, and what those need in turn, at a version their specifiers
allow. A dependency added to pyproject.toml without running scripts/lock fails here."""

from __future__ import annotations

import tomllib
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.support import REPO_ROOT

IMAGE_EXTRAS = ("fast",)


def pinned() -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (REPO_ROOT / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"not pinned with ==: {line}"
            pins[canonicalize_name(name)] = Version(version)
    return pins


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras = project["optional-dependencies"]
    lines = [*project["dependencies"], *(line for extra in IMAGE_EXTRAS for line in extras[extra])]
    return [Requirement(line) for line in lines]


def applies(requirement: Requirement, extras: set[str]) -> bool:
    if requirement.marker is None:
        return True
    environment = dict(default_environment())
    return any(requirement.marker.evaluate({**environment, "extra": extra}) for extra in extras or {""})


def runtime_requirements() -> list[Requirement]:
    """pyproject.toml's runtime requirements and, through the installed packages' metadata,
    everything they require with the extras asked of them."""
    found: list[Requirement] = []
    pending = [(requirement, set()) for requirement in declared()]
    seen: set[tuple[str, frozenset[str]]] = set()
    while pending:
        requirement, asked_extras = pending.pop()
        if not applies(requirement, asked_extras) or canonicalize_name(requirement.name) == "hookbus":
            continue
        found.append(requirement)
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in seen:
            continue
        seen.add(key)
        for line in metadata.requires(requirement.name) or []:
            pending.append((Requirement(line), set(requirement.extras)))
    return found


def test_every_runtime_dependency_is_pinned_at_a_version_it_allows() -> None:
    pins = pinned()
    requirements = runtime_requirements()

    assert {canonicalize_name(requirement.name) for requirement in declared()} <= set(pins)
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is not in constraints.txt: run scripts/lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside {requirement}: run scripts/lock"
        )
    # Nothing is pinned that hookbus does not need.
    assert set(pins) == {canonicalize_name(requirement.name) for requirement in requirements}
