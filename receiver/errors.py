"""Domain errors: what went wrong, in the domain's words; each front end maps them to HTTP."""


class DomainError(Exception):
    """An operation cannot be done; the message says why, naming the field or thing."""


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    """The operation does not fit the current state (e.g. deciding twice, differently)."""


class Forbidden(DomainError):
    """The user may not do this."""


class Invalid(DomainError):
    """One input is wrong; `field` names it."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Unavailable(DomainError):
    """The state could not be read or written (the database): trying again may help."""

