"""The one way the emulator changes moto: a `Patch` replaces one attribute of a moto module or
class (or one entry of a moto URL map) and remembers what was there, so `restore` puts moto back
exactly as it was. The list of patches is `patches.PATCHES`; the replacements reach moto's own
behaviour through `original`, never through module globals of their own.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

MISSING: Any = object()  # what a patch found where moto had nothing


@dataclass(frozen=True)
class Patch:
    """One replacement. `signature` is that of moto's original (for properties the getter's,
    for classmethods the function's), checked by the contract test so that a moto upgrade which
    renames or reshapes a target fails in one place; None: moto has no such attribute or entry."""

    owner: Any  # a moto module, class, or URL-map dict
    name: str
    replacement: Any
    why: str
    signature: str | None

    @property
    def target(self) -> str:
        if isinstance(self.owner, dict):
            return f"url_paths[{self.name}]"
        if isinstance(self.owner, type):
            return f"{self.owner.__module__}.{self.owner.__qualname__}.{self.name}"
        return f"{self.owner.__name__}.{self.name}"


_applied: dict[tuple[int, str], tuple[Patch, Any]] = {}  # (owner, name) -> patch, what it replaced


def _key(owner: Any, name: str) -> tuple[int, str]:
    return id(owner), name


def own(owner: Any, name: str) -> Any:
    """What `owner` itself holds under `name` (MISSING when it inherits it or has none)."""
    held = owner if isinstance(owner, dict) else vars(owner)
    return held.get(name, MISSING)


def moto_attribute(owner: Any, name: str) -> Any:
    """moto's own value, whether or not the patch is applied (raw: a classmethod or property
    object stays one, as `inspect.getattr_static` returns it)."""
    applied = _applied.get(_key(owner, name))
    if applied is None:
        if isinstance(owner, dict):
            return owner.get(name, MISSING)
        return inspect.getattr_static(owner, name, MISSING)
    replaced = applied[1]
    if replaced is not MISSING or isinstance(owner, dict):
        return replaced
    for base in owner.__mro__[1:]:  # the patch shadows an inherited attribute
        if name in vars(base):
            return vars(base)[name]
    return MISSING


def original(owner: Any, name: str) -> Any:
    """moto's behaviour a replacement extends; refuses while the patch is not applied."""
    if _key(owner, name) not in _applied:
        raise RuntimeError(f"{name}: the emulator's moto patch is not installed")
    found = moto_attribute(owner, name)
    if found is MISSING:
        raise RuntimeError(f"{name}: moto has no original to call")
    return found


def apply(patches: list[Patch]) -> None:
    """Apply each patch not yet applied; idempotent."""
    for patch in patches:
        key = _key(patch.owner, patch.name)
        if key in _applied:
            continue
        _applied[key] = (patch, own(patch.owner, patch.name))
        if isinstance(patch.owner, dict):
            patch.owner[patch.name] = patch.replacement
        else:
            setattr(patch.owner, patch.name, patch.replacement)


def restore() -> None:
    """Undo every applied patch, last first; idempotent."""
    for key in reversed(list(_applied)):
        patch, replaced = _applied.pop(key)
        if isinstance(patch.owner, dict):
            if replaced is MISSING:
                patch.owner.pop(patch.name, None)
            else:
                patch.owner[patch.name] = replaced
        elif replaced is MISSING:
            delattr(patch.owner, patch.name)
        else:
            setattr(patch.owner, patch.name, replaced)


def applied() -> bool:
    return bool(_applied)


def signature(value: Any) -> str | None:
    """The parameters the contract test compares, annotations left out (they are strings or
    types depending on how moto's module was written); None for MISSING or a non-callable."""
    if value is MISSING:
        return None
    if isinstance(value, property):
        value = value.fget
    if isinstance(value, classmethod | staticmethod):
        value = value.__func__
    if isinstance(value, dict) or not callable(value):
        return None
    try:
        found = inspect.signature(value)
    except (TypeError, ValueError):
        return None
    bare = [p.replace(annotation=p.empty) for p in found.parameters.values()]
    return str(found.replace(parameters=bare, return_annotation=found.empty))
