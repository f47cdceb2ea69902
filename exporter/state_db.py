"""Opening the exporter's state DB: one way for every connection to it."""

import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiosqlite


async def connect(path: Path | str,
                  setup: Callable[[aiosqlite.Connection], Awaitable[None]]) -> aiosqlite.Connection:
    """A connection to the state DB at `path`, set up by `setup` (pragmas, schema) and
    committed; closed again if that fails."""
    folder = Path(path).parent
    if not folder.is_dir():
        # Checked here: a failed connect leaves aiosqlite's worker thread behind.
        raise sqlite3.OperationalError(f"directory {folder} does not exist")
    db = await aiosqlite.connect(path)
    try:
        await setup(db)
        await db.commit()
    except BaseException:
        await db.close()
        raise
    return db
