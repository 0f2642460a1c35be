"""What a new password must be: long enough, not the username, not a common password.

The common passwords are a shipped list (`appliance/data/common-passwords.txt`, the first
10,000 entries of zxcvbn's frequency list, MIT licence); nothing is looked up on the network.
"""

from __future__ import annotations

import functools
from importlib import resources

from appliance.errors import AppError, ErrorCode

MAX_PASSWORD_LENGTH = 1024
COMMON_PASSWORDS_FILE = "common-passwords.txt"


@functools.cache
def common_passwords() -> frozenset[str]:
    """The shipped list, lower-cased, read once per process (immutable afterwards)."""
    text = (resources.files("appliance") / "data" / COMMON_PASSWORDS_FILE).read_text("utf-8")
    return frozenset(
        line.strip().lower()
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    )


class PasswordPolicy:
    def __init__(
        self,
        min_length: int,
        *,
        check_common: bool = True,
        common: frozenset[str] | None = None,
    ) -> None:
        self._min_length = min_length
        if not check_common:
            common = None
        elif common is None:
            common = common_passwords()
        self._common = common

    @property
    def min_length(self) -> int:
        return self._min_length

    def check(self, password: str, username: str = "") -> None:
        """Raise `weak_password` (or `invalid_request` when over the maximum length). Messages
        start with "password " and never repeat the password."""
        if len(password) > MAX_PASSWORD_LENGTH:
            raise AppError(
                ErrorCode.INVALID_REQUEST,
                f"password must be at most {MAX_PASSWORD_LENGTH} characters",
            )
        if len(password) < self._min_length:
            raise AppError(
                ErrorCode.WEAK_PASSWORD,
                f"password must be at least {self._min_length} characters",
            )
        if username and password.casefold() == username.casefold():
            raise AppError(ErrorCode.WEAK_PASSWORD, "password must not be the username")
        if self._common is not None and password.lower() in self._common:
            raise AppError(
                ErrorCode.WEAK_PASSWORD,
                "password is one of the most common passwords; choose another",
            )
