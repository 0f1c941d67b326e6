"""The public surface is small, sorted and complete (httpx's idea)."""

from __future__ import annotations

import natsbook
from natsbook import errors


def test_all_is_sorted_and_exported() -> None:
    names = natsbook.__all__
    assert names == sorted(names)
    for name in names:
        assert hasattr(natsbook, name), name


def test_public_modules_do_not_leak_private_names() -> None:
    public = {n for n in dir(natsbook) if not n.startswith("_")}
    allowed = set(natsbook.__all__) | {"errors", "annotations", "magics", "widgets", "jetstream",
                                       "kv", "monitor", "simulator", "cli"}
    assert public <= allowed, public - allowed


def test_error_tree() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, errors.NatsbookError), name
        assert name in (errors.__doc__ or "") or name in ("PermissionViolation", "Timeout"), name
