"""Airflow users with roles: ``python -m include.runtime.users add alice --role viewer``.

The platform's three roles are Flask-AppBuilder's built-in roles of Airflow's FAB auth
manager, under the names a team uses:

* ``viewer`` (FAB ``Viewer``): reads everything (DAGs, runs, task logs, the health, quality
  and backfill pages); changes nothing;
* ``operator`` (FAB ``User``): also triggers, clears, marks, pauses and backfills DAG runs;
* ``admin`` (FAB ``Admin``): also users, roles, connections, variables, pools, configuration.

Passwords are never arguments: ``add`` reads one from stdin when stdin is not a terminal
(``printf '%s' "$PW" | ... add alice --role viewer``), else asks twice without echo.  ``add``
is idempotent: an existing user gets the role and the password given.

Run it in Airflow's environment: locally through ``make user ARGS="add alice --role viewer"``
(the platform's database and settings), in docker compose inside an Airflow container.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

ROLES = {"viewer": "Viewer", "operator": "User", "admin": "Admin"}
MIN_PASSWORD_LENGTH = 8


class UserError(Exception):
    """A request the user database cannot carry out, in words for the command line."""


def fab_role(role: str) -> str:
    """The FAB role behind one of the platform's role names; UserError for another name."""
    try:
        return ROLES[role]
    except KeyError:
        raise UserError(
            f"unknown role {role!r}: use one of {', '.join(ROLES)} "
            "(viewer reads, operator also runs and clears DAGs, admin also manages users)"
        ) from None


def read_password(stdin: Any = None, ask: Any = getpass.getpass) -> str:
    """The password from a pipe (its first line), or typed twice at a terminal; UserError when
    empty, shorter than 8 characters, or the two typed ones differ."""
    stdin = stdin or sys.stdin
    if stdin.isatty():
        password = ask("Password: ")
        if ask("Repeat the password: ") != password:
            raise UserError("the two passwords differ; nothing was changed")
    else:
        password = stdin.readline().rstrip("\r\n")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(
            f"a password of at least {MIN_PASSWORD_LENGTH} characters is needed "
            "(piped on stdin, or typed at the prompt)"
        )
    return password


@contextmanager
def _security_manager() -> Iterator[Any]:
    """FAB's security manager inside its Flask app (Airflow's own `airflow users` does the
    same); needs Airflow's environment: its database and the FAB auth manager."""
    from airflow.configuration import conf

    manager = conf.get("core", "auth_manager")
    if "FabAuthManager" not in manager:
        raise UserError(
            f"Airflow's auth manager is {manager}, not the FAB auth manager: run this through "
            '`make user ARGS="..."` (locally) or inside an Airflow container (compose)'
        )
    from airflow.providers.fab.auth_manager.cli_commands.utils import get_application_builder

    with get_application_builder() as appbuilder:
        yield appbuilder.sm


def add_user(username: str, role: str, password: str, email: str | None = None) -> str:
    """Create ``username`` with ``role``, or give an existing one that role and password;
    returns what was done, in words."""
    name = fab_role(role)
    with _security_manager() as sm:
        fab = sm.find_role(name)
        if fab is None:
            raise UserError(f"Airflow has no role {name!r} yet: run `make up` first")
        user = sm.find_user(username=username)
        if user is None:
            created = sm.add_user(
                username, username, role, email or f"{username}@localhost", fab, password
            )
            if not created:
                raise UserError(f"Airflow could not create user {username!r}; see the log above")
            return f"created {username} as {role}"
        user.roles = [fab]
        sm.update_user(user)
        sm.reset_password(user.id, password)
        return f"{username} exists: role set to {role}, password replaced"


def list_users() -> list[tuple[str, str]]:
    """(username, the platform's role name or the FAB roles) of every user."""
    names = {fab: ours for ours, fab in ROLES.items()}
    with _security_manager() as sm:
        return [
            (u.username, ", ".join(names.get(r.name, r.name) for r in u.roles))
            for u in sm.get_all_users()
        ]


def remove_user(username: str) -> str:
    """Delete ``username``; UserError if there is none."""
    with _security_manager() as sm:
        user = sm.find_user(username=username)
        if user is None:
            raise UserError(f"no user {username!r}")
        user.roles.clear()  # as `airflow users delete` does: the role links first
        if not sm.del_register_user(user):
            raise UserError(f"Airflow could not remove {username!r}; see the log above")
        return f"removed {username}"


def main(argv: list[str] | None = None) -> int:
    """The command line; 2 and a message on stderr when a request cannot be carried out."""
    parser = argparse.ArgumentParser(prog="users", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add", help="create a user, or set an existing one's role and password")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=list(ROLES))
    add.add_argument("--email", help="default: <username>@localhost")
    sub.add_parser("list", help="every user and its role")
    remove = sub.add_parser("remove", help="delete a user")
    remove.add_argument("username")
    args = parser.parse_args(argv)
    try:
        if args.command == "add":
            print(add_user(args.username, args.role, read_password(), args.email))
        elif args.command == "list":
            for username, roles in list_users():
                print(f"{username:24} {roles}")
        else:
            print(remove_user(args.username))
    except UserError as exc:
        print(f"[users] ERROR: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
