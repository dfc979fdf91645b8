"""Stage registry: YAML `stage:` names to stage classes.

Built-in stages live one per file under `curate/stages/` and register themselves on import. A stage
outside the package can be named as `package.module:ClassName`.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil

from curate.stage import Stage

_REGISTRY: dict[str, type[Stage]] = {}


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make `cls` available under `cls.name`."""
    if cls.name in _REGISTRY and _REGISTRY[cls.name] is not cls:
        raise ValueError(f"stage name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_builtin_stages() -> None:
    import curate.stages as pkg

    for module in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"{pkg.__name__}.{module.name}")


def available() -> list[str]:
    _load_builtin_stages()
    return sorted(_REGISTRY)


def lookup(name: str) -> type[Stage]:
    """The stage class for a YAML name; raises KeyError with a suggestion when unknown."""
    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), attr)
        except (ImportError, AttributeError, ValueError) as err:  # ValueError: no module name
            raise KeyError(
                f"cannot import stage {name!r}: {err}; write it as 'package.module:ClassName'"
            ) from err
        if not (isinstance(cls, type) and issubclass(cls, Stage)):
            raise KeyError(f"{name!r} is not a Stage subclass")
        # The base classes (Stage, FilterStage, ...) have none: the run's counters would fail on it.
        if not isinstance(getattr(cls, "name", None), str):
            raise KeyError(
                f"{name!r} has no `name` (a class attribute, e.g. name = 'my_filter'); is it a stage?"
            )
        return cls
    _load_builtin_stages()
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"known stages: {', '.join(sorted(_REGISTRY))}"
        raise KeyError(f"unknown stage {name!r}; {hint}")
    return _REGISTRY[name]
