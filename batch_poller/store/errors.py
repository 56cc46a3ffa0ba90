"""Database errors as text that is safe to store, log and serve.

SQLAlchemy's own text for a failed statement carries the statement and its parameters: record
contents (model outputs, prompts) that must never reach logs, `last_error` or the API. What is
kept is the operation and the database's own message.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from sqlalchemy.exc import DBAPIError, SQLAlchemyError, StatementError

MESSAGE_LIMIT = 300
P = ParamSpec("P")
T = TypeVar("T")
# asyncpg quotes the offending value after this; the value may be a record's content.
_QUOTED_ARGUMENT = re.compile(r"(query argument \$\d+)\s*:.*", re.DOTALL)


class StoreError(Exception):
    """A database operation failed. The message names the operation and the database's message;
    `original` is the error itself, for code that sorts failures (never for display)."""

    def __init__(self, message: str, original: BaseException) -> None:
        super().__init__(message)
        self.original = original


def describe_database_error(operation: str, error: BaseException) -> str:
    """`{operation}: {the database's message}`, one line, without SQL or parameters."""
    return f"{operation}: {database_message(error)}"


def database_message(error: BaseException) -> str:
    cause: BaseException = error
    if isinstance(error, StatementError) and error.orig is not None:
        cause = error.orig
    text = "" if cause is error and isinstance(error, DBAPIError) else str(cause).strip()
    # asyncpg's messages come wrapped as "<class 'asyncpg.exceptions.X'>: message".
    kind = type(cause).__name__
    if text.startswith("<class '") and "'>: " in text:
        name, _, text = text.partition("'>: ")
        kind = name.rsplit(".", 1)[-1]
    if isinstance(cause, StatementError):
        # SQLAlchemy's own text: the statement, maybe its parameters. Only the first line says
        # what went wrong.
        text = text.partition("[SQL:")[0]
    line = _QUOTED_ARGUMENT.sub(r"\1", text.splitlines()[0] if text else "").strip()
    if len(line) > MESSAGE_LIMIT:
        line = line[:MESSAGE_LIMIT] + "..."
    return f"{kind}: {line}" if line else kind


def is_database_failure(error: BaseException) -> bool:
    """SQLAlchemy's errors, and what the drivers raise past it: a socket refused or reset
    while connecting, asyncpg's own errors, sqlite3's from the bulk write (bulk.py)."""
    return isinstance(error, SQLAlchemyError | OSError | sqlite3.Error) or type(
        error
    ).__module__.startswith("asyncpg")


def store_operation(
    operation: str,
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Turns a store method's database failure into a StoreError naming `operation`."""

    def wrap(method: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(method)
        async def run(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await method(*args, **kwargs)
            except Exception as error:
                if not is_database_failure(error):
                    raise
                # `from None`: the chained error's text would carry the statement again.
                raise StoreError(describe_database_error(operation, error), error) from None

        return run

    return wrap
