"""The patch machinery: reversible, layered patches over moto attributes.

A :class:`Fix` is a tuple of :class:`Patch` layers. Layers on one attribute compose in
the order the patches were created (so a fix defined later wraps one defined earlier),
and each can be removed on its own: the functional tests revert one fix at a time to
show that moto still has the bug. Nothing here imports moto until a patch is applied.
"""

from __future__ import annotations

import importlib
import inspect
import itertools
import threading
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

Impl = Callable[..., Any]
Wrapper = Callable[[Impl], Impl]


class MotoCompatWarning(UserWarning):
    """A compatibility fix could not be applied, or moto is not the pinned version."""


_ORDER = itertools.count()
_MISSING: Final = object()
_LOCK = threading.RLock()


@dataclass(frozen=True)
class Patch:
    """One layer over ``<target>.<attribute>``; ``wrap(inner)`` returns the replacement.

    ``target`` is ``"package.module:Class"`` (or ``"package.module"`` for a module-level
    function). ``expected_params`` is the leading parameter names that the unpatched
    function must still have for the patch to be considered applicable.
    """

    target: str
    attribute: str
    wrap: Wrapper
    expected_params: tuple[str, ...] = ()
    order: int = field(default_factory=lambda: next(_ORDER), compare=False)

    def owner(self) -> Any:
        module_name, _, qualname = self.target.partition(":")
        owner: Any = importlib.import_module(module_name)
        for part in filter(None, qualname.split(".")):
            owner = getattr(owner, part)
        return owner

    def is_compatible(self) -> bool:
        """True when the target exists and still has the shape the patch was written for."""
        try:
            owner = self.owner()
        except (ImportError, AttributeError):
            return False
        impl = _pristine(owner, self.attribute)
        if impl is None:
            return False
        if not self.expected_params:
            return True
        names = tuple(inspect.signature(impl).parameters)
        return names[: len(self.expected_params)] == self.expected_params


@dataclass
class _Site:
    owner: Any
    attribute: str
    original: Any  # the value in owner.__dict__, or _MISSING when inherited
    layers: dict[int, Patch] = field(default_factory=dict)


_SITES: dict[tuple[int, str], _Site] = {}
_generation = 0  # bumped whenever a layer is installed or removed anywhere


def generation() -> int:
    """Changes whenever the patched code changes: a cache of what moto built with the
    patches of one generation (e.g. a parsed state machine) is stale in the next."""
    return _generation


def _own_value(owner: Any, attribute: str) -> Any:
    return vars(owner).get(attribute, _MISSING)


def _pristine(owner: Any, attribute: str) -> Impl | None:
    """The unpatched function behind ``owner.attribute`` (inherited ones included)."""
    site = _SITES.get((id(owner), attribute))
    value = site.original if site is not None else _own_value(owner, attribute)
    if value is _MISSING and inspect.isclass(owner):
        for klass in owner.__mro__[1:]:
            value = vars(klass).get(attribute, _MISSING)
            if value is not _MISSING:
                break
    if isinstance(value, (staticmethod, classmethod)):  # patched as the function, put back
        value = value.__func__
    return value if inspect.isfunction(value) else None


def _base_impl(site: _Site) -> Impl:
    if isinstance(site.original, (staticmethod, classmethod)):
        return site.original.__func__
    if site.original is not _MISSING:
        return site.original  # type: ignore[no-any-return]
    owner, attribute = site.owner, site.attribute

    def inherited(self: Any, *args: Any, **kwargs: Any) -> Any:
        return getattr(super(owner, self), attribute)(*args, **kwargs)

    return inherited


def _rebuild(site: _Site) -> None:
    global _generation  # noqa: PLW0603 - one counter for every site, under _LOCK
    _generation += 1
    if not site.layers:
        if site.original is _MISSING:
            delattr(site.owner, site.attribute)
        else:
            setattr(site.owner, site.attribute, site.original)
        del _SITES[(id(site.owner), site.attribute)]
        return
    impl = _base_impl(site)
    for order in sorted(site.layers):
        impl = site.layers[order].wrap(impl)
    bound: Any = impl
    if isinstance(site.original, (staticmethod, classmethod)):
        bound = type(site.original)(impl)
    setattr(site.owner, site.attribute, bound)


def _is_installed(patch: Patch) -> bool:
    try:
        owner = patch.owner()
    except (ImportError, AttributeError):
        return False
    site = _SITES.get((id(owner), patch.attribute))
    return site is not None and patch.order in site.layers


def _install(patch: Patch) -> None:
    owner = patch.owner()
    key = (id(owner), patch.attribute)
    site = _SITES.get(key)
    if site is None:
        site = _Site(owner, patch.attribute, _own_value(owner, patch.attribute))
        _SITES[key] = site
    site.layers[patch.order] = patch
    _rebuild(site)


def _uninstall(patch: Patch) -> None:
    site = _SITES.get((id(patch.owner()), patch.attribute))
    if site is not None and site.layers.pop(patch.order, None) is not None:
        _rebuild(site)


@dataclass(frozen=True)
class Fix:
    """A named, reversible compatibility fix made of one or more patch layers."""

    name: str
    design_ref: str
    description: str
    patches: tuple[Patch, ...]

    def applies(self) -> bool:
        """True when every patched target still exists with the expected shape."""
        return all(patch.is_compatible() for patch in self.patches)

    def is_applied(self) -> bool:
        with _LOCK:
            return all(_is_installed(patch) for patch in self.patches)

    def apply(self) -> bool:
        """Install the fix; False (with a warning when it no longer fits) if not installed."""
        with _LOCK:
            if self.is_applied():
                return False
            if not self.applies():
                warnings.warn(
                    f"moto compatibility fix {self.name!r} ({self.design_ref}) was not applied: "
                    "the moto code it patches changed shape. Check whether moto fixed the bug.",
                    MotoCompatWarning,
                    stacklevel=2,
                )
                return False
            for patch in self.patches:
                _install(patch)
            return True

    def revert(self) -> bool:
        """Remove the fix; False if it was not applied."""
        with _LOCK:
            if not any(_is_installed(patch) for patch in self.patches):
                return False
            for patch in self.patches:
                _uninstall(patch)
            return True

    @contextmanager
    def reverted(self) -> Iterator[None]:
        """Run a block with this fix removed (the tests use it to show the bug)."""
        was_applied = self.revert()
        try:
            yield
        finally:
            if was_applied:
                self.apply()
