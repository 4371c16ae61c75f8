"""The users command's pure parts: role names and how a password is read (never from argv)."""

from __future__ import annotations

import io

import pytest

from include.runtime.users import MIN_PASSWORD_LENGTH, UserError, fab_role, main, read_password


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_three_roles_map_to_fabs_and_another_name_says_which_exist() -> None:
    assert [fab_role(r) for r in ("viewer", "operator", "admin")] == ["Viewer", "User", "Admin"]
    with pytest.raises(UserError, match="viewer, operator, admin"):
        fab_role("Op")


def test_a_piped_password_is_its_first_line_without_the_newline() -> None:
    assert read_password(io.StringIO("s3cret-pass\r\nignored\n")) == "s3cret-pass"


def test_a_short_or_empty_password_is_refused() -> None:
    for given in ("", "\n", "x" * (MIN_PASSWORD_LENGTH - 1) + "\n"):
        with pytest.raises(UserError, match="at least 8 characters"):
            read_password(io.StringIO(given))


def test_at_a_terminal_it_asks_twice_and_the_two_must_match() -> None:
    answers = iter(["first-password", "first-password"])
    assert read_password(Terminal(), ask=lambda _: next(answers)) == "first-password"
    answers = iter(["first-password", "other-password"])
    with pytest.raises(UserError, match="differ"):
        read_password(Terminal(), ask=lambda _: next(answers))


def test_there_is_no_password_option() -> None:
    with pytest.raises(SystemExit):
        main(["add", "alice", "--role", "viewer", "--password", "x"])
