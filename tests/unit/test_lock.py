"""requirements.lock (the Docker image installs only from it) pins, with hashes, every runtime dependency."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def locked() -> dict[str, tuple[str, str]]:
    """Canonical name → (version, the requirement's whole entry) for every pin in the lock."""
    text = (ROOT / "requirements.lock").read_text()
    entries = re.split(r"\n(?=[A-Za-z0-9])", text)
    pins = {}
    for entry in entries:
        match = _PIN.match(entry)
        if match:
            pins[canonicalize_name(match.group(1))] = (match.group(2), entry)
    return pins


def test_every_pyproject_dependency_is_locked_at_a_matching_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = locked()
    missing, mismatched = [], []
    for spec in project["dependencies"]:
        requirement = Requirement(spec)
        if requirement.marker is not None and not requirement.marker.evaluate({"platform_system": "Linux"}):
            continue  # the image is Linux
        name = canonicalize_name(requirement.name)
        if name not in pins:
            missing.append(requirement.name)
        elif not requirement.specifier.contains(pins[name][0], prereleases=True):
            mismatched.append(f"{requirement.name} {requirement.specifier} (locked {pins[name][0]})")
    assert not missing, f"regenerate requirements.lock (README): not locked {missing}"
    assert not mismatched, f"regenerate requirements.lock (README): {mismatched}"


def test_every_pin_carries_a_hash() -> None:
    pins = locked()
    assert len(pins) > 20
    unhashed = [name for name, (_v, entry) in pins.items() if "--hash=sha256:" not in entry]
    assert not unhashed


def test_the_lock_points_at_no_private_index() -> None:
    text = (ROOT / "requirements.lock").read_text()
    assert not re.search(r"^\s*(--index-url|--extra-index-url|--find-links|-f |-i )", text, re.M)
