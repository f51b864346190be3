"""Labeling functions written in Python and registered in code.

Register a function (text in, label value or ``None`` out) anywhere that Django imports at
start-up, e.g. your app's ``ready()`` or a module listed in ``WS_PYTHON_LF_MODULES``::

    from weak_supervision.registry import labeling_function

    @labeling_function("has_url")
    def has_url(text: str) -> str | None:
        return "spam" if "http://" in text else None

Then create a labeling function of kind ``python`` naming ``has_url`` (UI, admin or API).
Only registered functions can be named: a project setting never imports arbitrary code.
The function's version includes a hash of its source, so editing the code and redeploying
re-runs it on the next apply job.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

LFCallable = Callable[[str], Any]


@dataclass(frozen=True)
class RegisteredLF:
    name: str
    function: LFCallable
    version: str
    description: str


_REGISTRY: dict[str, RegisteredLF] = {}


def _source_hash(function: LFCallable) -> str:
    try:
        source = inspect.getsource(function)
    except (OSError, TypeError):
        source = getattr(function, "__qualname__", repr(function))
    return hashlib.sha256(source.encode()).hexdigest()[:10]


def labeling_function(name: str, *, version: str = "1") -> Callable[[LFCallable], LFCallable]:
    """Decorator registering ``function`` under ``name``."""

    def register(function: LFCallable) -> LFCallable:
        _REGISTRY[name] = RegisteredLF(
            name=name,
            function=function,
            version=f"{version}-{_source_hash(function)}",
            description=(inspect.getdoc(function) or "").split("\n")[0],
        )
        return function

    return register


def registered(name: str) -> RegisteredLF | None:
    return _REGISTRY.get(name)


def registered_names() -> list[str]:
    return sorted(_REGISTRY)


def unregister(name: str) -> None:
    """For tests."""
    _REGISTRY.pop(name, None)
