"""The rooms store's queries by backend: SQLite's (``store``, ``extras``, chat's ``features`` and
``changelog``) or PostgreSQL's (``pgstore``, ``pgextras``, chat's ``pgfeatures``), under the
same names, so the operations and reads run unchanged on either. ``RoomsService.sql`` is one.
"""

from __future__ import annotations

from types import ModuleType, SimpleNamespace
from typing import Any

from chatcore_chat import changelog, features, pgfeatures
from chatcore_rooms import extras, pgextras, pgstore, store


def _functions(*modules: ModuleType) -> dict[str, Any]:
    """The public functions each module defines itself, later modules' winning."""
    found: dict[str, Any] = {}
    for module in modules:
        found.update((name, value) for name, value in vars(module).items()
                     if callable(value) and not name.startswith("_") and getattr(value, "__module__", "") == module.__name__)
    return found


SQLITE = SimpleNamespace(
    **_functions(store, extras), edit=features.edit, react=features.react, reactions=features.reactions,
    record=changelog.record, newest=changelog.newest, pruned_up_to=changelog.pruned_up_to,
    record_many=changelog.record_many, cluster=False)
POSTGRES = SimpleNamespace(
    **_functions(pgstore, pgextras), react=pgfeatures.react, reactions=pgfeatures.reactions,
    record=pgfeatures.record, newest=pgfeatures.newest, pruned_up_to=pgfeatures.pruned_up_to, cluster=True)


def of(cluster: bool) -> SimpleNamespace:
    """The queries of the store in use."""
    return POSTGRES if cluster else SQLITE
