"""Object store verbs: %nats_obj (list a bucket, show, store, save or delete an object)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments

from ._magic_support import check_name, magic_errors, parse_line
from ._magics_base import NatsMagicsBase


@magics_class
class ObjectMagics(NatsMagicsBase):
    """JetStream object store buckets."""

    @magic_arguments()
    @argument("bucket", help="object store bucket name")
    @argument("name", nargs="?", help="an object: show its meta (or --put/--save/--delete)")
    @argument("--put", metavar="FILE", help="store FILE as NAME (read chunk by chunk)")
    @argument("--save", metavar="FILE", help="write object NAME to FILE (digest checked)")
    @argument("--bytes", action="store_true", help="return object NAME's bytes")
    @argument("--delete", action="store_true", help="delete object NAME")
    @argument("--create", action="store_true", help="create the bucket when it is missing")
    @argument("--deleted", action="store_true", help="list deleted objects too")
    @argument("-o", "--out", dest="var", help="bind the result to this variable")
    @line_magic
    def nats_obj(self, line: str) -> Any:
        """An object store bucket as a DataFrame (name, size, chunks, modified, digest...),
        or one object: its meta, ``--bytes``, ``--save FILE``, ``--put FILE``, ``--delete``."""
        args = parse_line(self.nats_obj, line)
        check_name(args.var)
        actions = [a for a in ("put", "save", "bytes", "delete") if getattr(args, a)]
        if len(actions) > 1:
            raise UsageError(f"choose one of --{' / --'.join(actions)}")
        if actions and not args.name:
            raise UsageError(f"--{actions[0]} needs an object NAME: %nats_obj BUCKET NAME "
                             f"--{actions[0]}")
        conn = self._require()
        try:
            with magic_errors():
                store = conn.object_store(args.bucket, create=args.create,
                                          timeout=max(self.timeout, 5.0))
                result: Any
                if not args.name:
                    result = store.list(deleted=args.deleted)
                    self._limit_display(len(result))
                elif args.put:
                    result = store.put(args.name, Path(args.put))
                elif args.save:
                    result = store.get(args.name, args.save)
                elif args.bytes:
                    result = store.get(args.name)
                elif args.delete:
                    store.delete(args.name)
                    result = None
                else:
                    result = store.info(args.name, deleted=args.deleted)
        except OSError as exc:  # --put/--save: a file that cannot be read or written
            raise UsageError(f"{exc.strerror or exc}: {exc.filename!r}") from None
        self._bind(args.var, result)
        return result
