"""Tasks: everything one prediction task owns (view, datamodule, outputs, evaluator, plots, baselines).

A model declares ``task = "<name>"``; ``get_task(name)`` imports ``deepromo.tasks.<name>`` on first use.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path

from deepromo.data.errors import UnknownNameError
from deepromo.tasks.base import Evaluation, Task

__all__ = ["Evaluation", "Task", "get_task", "list_tasks", "model_datamodule"]
NOT_TASKS = ("base",)


@functools.cache
def task_modules() -> tuple[str, ...]:
    """Names of the task modules in this package (read once: the package does not change while it runs)."""
    here = [str(Path(__file__).resolve().parent)]
    return tuple(sorted(m.name for m in pkgutil.iter_modules(here) if m.name not in NOT_TASKS))


def list_tasks() -> list[str]:
    """Names of the task modules in this package."""
    return list(task_modules())


def get_task(name: str) -> Task:
    """The ``TASK`` object of ``deepromo/tasks/<name>.py``."""
    if name not in task_modules():
        raise UnknownNameError(f"unknown task '{name}'; known tasks are {list_tasks()}")
    return importlib.import_module(f"{__name__}.{name}").TASK


def model_datamodule(cls, data, batch_size: int = 512, split: str | None = None, seed: int = 0,
                     params: dict | None = None, view_options: dict | None = None, setup: bool = True):
    """The datamodule model class ``cls`` trains on: its task's view of ``data`` (``view_options``) served by
    its task's datamodule (``cls.datamodule_options`` of the defaults and ``params``); set up unless told not."""
    from deepromo.data.views import build_view

    task = get_task(cls.task)
    view = build_view(task.view, data, **(view_options or {}))
    dm = task.make_datamodule(view, batch_size=batch_size, split=split, seed=seed,
                              options=cls.datamodule_options({**cls.defaults, **(params or {})}))
    if setup:
        dm.setup()
    return dm
