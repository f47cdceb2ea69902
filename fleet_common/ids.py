"""Row ids taken from URLs."""


def parse_id(raw: str) -> int | None:
    """A non-negative integer in ASCII digits that fits SQLite, else None.

    str.isdigit() alone accepts digits such as "²" that int() rejects.
    """
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        return None
    return int(raw)
