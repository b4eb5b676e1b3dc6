"""``data.task`` -> Task class. Importing this module registers the built-in tasks; a task
defined elsewhere registers itself with ``embedlab.tasks.base.register`` on import."""

from __future__ import annotations

from embedlab.errors import ConfigError
from embedlab.tasks import bitext, mlm, retrieval, sts  # noqa: F401  (they register themselves)
from embedlab.tasks.base import TASKS, Task


def task_class(name: str) -> type[Task]:
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"Unknown data.task '{name}'. Choose one of {sorted(TASKS)}.") from None
