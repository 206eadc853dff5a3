"""Copy-on-write SQLite databases: each fork is a page overlay over one shared, read-only base file.

A fork costs a dict and a connection (about 0.1 ms), and holds only the pages it wrote; reads of
unchanged pages go to the base file through the OS page cache that every fork shares. This is
what keeps a thousand live forks of a 100 MB database in bounded memory, with exact SQLite
semantics (constraints, triggers, foreign keys) because SQLite itself runs on the overlay.

The VFS also keeps the clock: SQL's ``'now'`` (``CURRENT_TIMESTAMP``, ``date('now')``...) reads ``sql_clock`` when
it is set, so a dialogue's writes carry the dialogue's own date, not the wall clock's.

The VFS opens nothing but registered overlays: a statement that tries to open another file
(ATTACH, VACUUM INTO) fails here even if the authorizer were bypassed. Forks run with an
in-memory rollback journal and in-memory temp storage, so no file is ever created or written.
"""

from __future__ import annotations

import itertools
import os
import weakref
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime

import apsw

_HEADER_SIZE = 100
_VFS_NAME = "dialforge-overlay"
_UNIX_EPOCH_JULIAN_MS = 210_866_760_000_000
"""the Unix epoch in SQLite's clock unit: milliseconds since noon UTC, 24 November 4714 BC (the Julian day 0)"""

sql_clock: ContextVar[int | None] = ContextVar("sql_clock", default=None)
"""what SQL's 'now' reads in this context, in SQLite's clock unit; ``None``: the wall clock"""


def julian_ms(moment: datetime) -> int:
    """``moment`` in SQLite's clock unit; a naive datetime counts as UTC, as SQLite's own times do."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return _UNIX_EPOCH_JULIAN_MS + round(aware.timestamp() * 1000)


@dataclass(frozen=True, eq=False)
class BaseFile:
    """The read-only database file that every overlay reads unchanged pages from."""

    path: str
    fd: int
    size: int
    page_size: int

    @classmethod
    def open(cls, path: str) -> BaseFile:
        fd = os.open(path, os.O_RDONLY)
        header = os.pread(fd, _HEADER_SIZE, 0)
        page_size = int.from_bytes(header[16:18], "big")
        return cls(path, fd, os.fstat(fd).st_size, 65536 if page_size == 1 else page_size)

    def close(self) -> None:
        os.close(self.fd)


class PageOverlay:
    """The pages one fork has written. Pages are immutable ``bytes``, so a fork of a fork copies the dict only."""

    def __init__(self, base: BaseFile, pages: dict[int, bytes], size: int, max_bytes: int) -> None:
        self.base = base
        self.pages = pages
        self.size = size
        self.max_bytes = max_bytes

    def copy(self) -> PageOverlay:
        return PageOverlay(self.base, dict(self.pages), self.size, self.max_bytes)

    @property
    def bytes_held(self) -> int:
        return len(self.pages) * self.base.page_size

    def _page(self, index: int) -> bytes:
        page = self.pages.get(index)
        if page is not None:
            return page
        size = self.base.page_size
        return os.pread(self.base.fd, size, index * size).ljust(size, b"\0")

    def read(self, amount: int, offset: int) -> bytes:
        size = self.base.page_size
        if offset >= self.size:
            return b""
        amount = min(amount, self.size - offset)
        first, last = offset // size, (offset + amount - 1) // size
        if first == last:
            page = self.pages.get(first)
            if page is None:
                return os.pread(self.base.fd, amount, offset)
            start = offset - first * size
            return page[start : start + amount]
        data = b"".join(self._page(index) for index in range(first, last + 1))
        start = offset - first * size
        return data[start : start + amount]

    def write(self, data: bytes, offset: int) -> None:
        size = self.base.page_size
        if offset % size == 0 and len(data) == size:
            self.pages[offset // size] = bytes(data)
        else:
            first, last = offset // size, (offset + len(data) - 1) // size
            buffer = bytearray(b"".join(self._page(index) for index in range(first, last + 1)))
            start = offset - first * size
            buffer[start : start + len(data)] = data
            for number, index in enumerate(range(first, last + 1)):
                self.pages[index] = bytes(buffer[number * size : (number + 1) * size])
        self.size = max(self.size, offset + len(data))
        if self.bytes_held > self.max_bytes:
            raise apsw.FullError(
                f"this dialogue's database changes exceed {self.max_bytes // (1 << 20)} MiB; the write was refused"
            )

    def truncate(self, size: int) -> None:
        page_size = self.base.page_size
        self.size = size
        for index in [i for i in self.pages if i * page_size >= size]:
            del self.pages[index]


class _OverlayFile:
    """The apsw VFS file object for one open overlay (the methods SQLite calls, by their C names)."""

    def __init__(self, overlay: PageOverlay) -> None:
        self.overlay = overlay

    def xRead(self, amount: int, offset: int) -> bytes:
        return self.overlay.read(amount, offset)

    def xWrite(self, data: bytes, offset: int) -> None:
        self.overlay.write(data, offset)

    def xFileSize(self) -> int:
        return self.overlay.size

    def xTruncate(self, size: int) -> None:
        self.overlay.truncate(size)

    def xSync(self, flags: int) -> None:
        pass

    def xLock(self, level: int) -> None:
        pass  # one connection per overlay: nothing to coordinate

    def xUnlock(self, level: int) -> None:
        pass

    def xCheckReservedLock(self) -> bool:
        return False

    def xFileControl(self, op: int, ptr: int) -> bool:
        return False

    def xSectorSize(self) -> int:
        return 4096

    def xDeviceCharacteristics(self) -> int:
        return 0

    def xClose(self) -> None:
        pass


class _OverlayVFS(apsw.VFS):
    def __init__(self) -> None:
        self.overlays: weakref.WeakValueDictionary[str, PageOverlay] = weakref.WeakValueDictionary()
        super().__init__(_VFS_NAME, "")

    # apsw's stub types the result as VFSFile, but apsw takes any object with the xRead... methods (its docs:
    # derive from VFSFile only to wrap another VFS's file, which would open a real file here).
    def xOpen(self, name: str | apsw.URIFilename | None, flags: list[int]) -> _OverlayFile:  # type: ignore[override]
        key = name.filename() if isinstance(name, apsw.URIFilename) else name
        overlay = self.overlays.get(key) if key else None
        if overlay is None:
            raise apsw.CantOpenError(f"the sandbox opens no files ({key!r} refused)")
        return _OverlayFile(overlay)

    def xAccess(self, name: str, flags: int) -> bool:
        return name in self.overlays

    def xDelete(self, name: str, syncdir: bool) -> None:
        pass

    def xFullPathname(self, name: str) -> str:
        return name

    def xCurrentTimeInt64(self) -> int:
        fixed = sql_clock.get()
        return fixed if fixed is not None else super().xCurrentTimeInt64()


_vfs: _OverlayVFS | None = None
_names = itertools.count()


def connect(overlay: PageOverlay, *, cache_kib: int = 256, foreign_keys: bool = True) -> apsw.Connection:
    """A connection whose database is ``overlay``: no journal file, no temp file, foreign keys on (unless the
    schema's are ones SQLite cannot enforce: ``DatabaseSchema.foreign_keys_enforced``).

    The caller keeps ``overlay`` alive as long as the connection (the VFS holds it weakly). The page
    cache is small on purpose: unchanged pages come from the OS cache shared by every fork.
    """
    global _vfs
    if _vfs is None:
        _vfs = _OverlayVFS()
    name = f"/dialforge-overlay-{next(_names)}"
    _vfs.overlays[name] = overlay
    connection = apsw.Connection(name, vfs=_VFS_NAME, flags=apsw.SQLITE_OPEN_READWRITE)
    enforce = "ON" if foreign_keys else "OFF"
    for pragma in ("journal_mode=MEMORY", "temp_store=MEMORY", f"foreign_keys={enforce}", f"cache_size=-{cache_kib}"):
        connection.execute(f"PRAGMA {pragma}").fetchall()  # one by one: apsw stops a batch at the first row
    return connection
