"""``data.task`` -> Task class. Every module of this package is imported once, on the first
lookup, so a new task is one file here that registers itself (``@register("<name>")``) plus
its data yaml; a task defined elsewhere registers itself on import the same way."""

from __future__ import annotations

import functools
import importlib
import pkgutil

import embedlab.tasks
from embedlab.errors import ConfigError
from embedlab.tasks.base import TASKS, Task

_NOT_TASKS = {"registry", "runner"}  # the runner imports the registry, not the reverse


@functools.cache
def _import_task_modules() -> None:
    for module in pkgutil.iter_modules(embedlab.tasks.__path__):
        if module.name not in _NOT_TASKS:
            importlib.import_module(f"embedlab.tasks.{module.name}")


def task_class(name: str) -> type[Task]:
    _import_task_modules()
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"Unknown data.task '{name}'. Choose one of {sorted(TASKS)}.") from None
