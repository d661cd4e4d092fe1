"""What every component of the Joint Fabric Datastore shares: the database, one transaction with its change batch,
the observers, the revision counter and the clock.

``JfdsStore`` (``jfds.py``) is composed of components (``jfds_entries.EntryStore`` for the per-node entries,
``jfds_fabric_wide.FabricWideStore`` for the anchor and the fabric-wide lists) that all hold the same
``DatastoreCore``, so a call on one component inside another's transaction joins it, and observers get one
``DatastoreChange`` per outermost block whichever components it touched.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Concatenate, ParamSpec, Protocol, TypeVar

from jfds_device.datastore.jfds_records import DatastoreChange, EntryRef, Table
from jfds_device.datastore.jfds_tables import JFDS_MIGRATIONS, MIGRATION_COMPONENT, matter_epoch_s
from jfds_device.datastore.sqlite import Database
from jfds_device.errors import LocalProtocolError

__all__ = ["ChangeBatch", "DatastoreCore", "atomic"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ChangeBatch:
    """What the open transaction changed so far; becomes one ``DatastoreChange`` when the outermost block ends."""

    tables: set[Table] = field(default_factory=set)
    intent: list[EntryRef] = field(default_factory=list)
    status: list[EntryRef] = field(default_factory=list)
    erased: list[EntryRef] = field(default_factory=list)
    refresh: list[int] = field(default_factory=list)
    wiped: bool = False

    def mark(self) -> tuple[int, int, int, int]:
        return len(self.intent), len(self.status), len(self.erased), len(self.refresh)

    def truncate(self, mark: tuple[int, int, int, int]) -> None:
        del self.intent[mark[0] :], self.status[mark[1] :], self.erased[mark[2] :], self.refresh[mark[3] :]

    def change(self) -> DatastoreChange | None:
        if not (self.tables or self.refresh or self.wiped):
            return None
        return DatastoreChange(
            tables=frozenset(self.tables),
            intent=tuple(dict.fromkeys(self.intent)),
            status=tuple(dict.fromkeys(self.status)),
            erased=tuple(dict.fromkeys(self.erased)),
            refresh=tuple(dict.fromkeys(self.refresh)),
            wiped=self.wiped,
        )


class DatastoreCore:
    """The shared plumbing; ``clock`` returns Unix time in seconds (the UpdateTimestamp source)."""

    def __init__(self, db: Database, *, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock
        self._batch: ChangeBatch | None = None
        self._observers: list[Callable[[DatastoreChange], None]] = []
        db.migrate(MIGRATION_COMPONENT, JFDS_MIGRATIONS)

    @property
    def in_transaction(self) -> bool:
        """Whether the underlying database has a transaction open (ours or the node's)."""
        return self.db.in_transaction

    def observe(self, callback: Callable[[DatastoreChange], None]) -> Callable[[], None]:
        """Call ``callback`` with every ``DatastoreChange``; returns the function that unsubscribes it."""
        self._observers.append(callback)

        def unsubscribe() -> None:
            if callback in self._observers:
                self._observers.remove(callback)

        return unsubscribe

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group calls into one unit: all or nothing, one ``DatastoreChange`` at the end of the outermost block."""
        outer = self._batch is None
        batch = ChangeBatch() if self._batch is None else self._batch
        self._batch = batch
        mark = batch.mark()
        try:
            with self.db.transaction():
                yield
        except BaseException:
            if outer:
                self._batch = None
            else:
                batch.truncate(mark)  # this block's work was rolled back; so are its events
            raise
        if outer:
            self._batch = None
            change = batch.change()
            if change is not None:
                self._emit(change)

    def _emit(self, change: DatastoreChange) -> None:
        for observer in list(self._observers):
            try:
                observer(change)
            except Exception:  # one broken observer must not undo a datastore change or starve the others
                log.exception("JFDS observer %r failed", observer)

    def record(self) -> ChangeBatch:
        """The open transaction's batch, where a write notes what it changed."""
        if self._batch is None:
            raise LocalProtocolError("datastore writes must run inside transaction()")
        return self._batch

    def now(self) -> int:
        """The clock as an UpdateTimestamp (Matter-epoch seconds)."""
        return matter_epoch_s(self.clock())

    def rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        return self.db.execute(sql, tuple(params)).fetchall()

    def row(self, sql: str, params: Iterable[Any] = ()) -> Any:
        return self.db.execute(sql, tuple(params)).fetchone()

    def count(self, table: str) -> int:
        return int(self.row(f"SELECT COUNT(*) FROM {table}")[0])

    def next_revision(self) -> int:
        return int(self.row("UPDATE jfds_counters SET value = value + 1 WHERE name = 'revision' RETURNING value")[0])


class _Component(Protocol):
    @property
    def _core(self) -> DatastoreCore: ...


P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C", bound=_Component)


def atomic(method: Callable[Concatenate[C, P], R]) -> Callable[Concatenate[C, P], R]:
    """Run a component's method in its core's ``transaction()``."""

    @functools.wraps(method)
    def wrapper(self: C, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._core.transaction():
            return method(self, *args, **kwargs)

    return wrapper
