"""Whether the file system can look a path up, said in words: the checks every command makes on a
path it is given (a study directory, a config file, an output) before it reads or writes there.

Standard library only, so every layer may use it; :mod:`hplandscape.store.study_store` adds the checks that
know a study's own files.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from hplandscape.errors import UserError

#: Bytes per file name where the file system does not say (``NAME_MAX`` of Linux and macOS).
NAME_MAX = 255


def check_path(path, what: str) -> Path:
    """``path`` when the file system can look it up, else ``UserError`` naming it: a name longer
    than the file system allows, a loop of symbolic links, or a symbolic link to nothing, on the
    path itself or on a folder above it. (Each would otherwise end in a raw ``OSError``, or, for
    a link to nothing, in "no such file" or "file exists".) A path that does not exist yet passes.
    """
    path = Path(path)
    limit = _name_max(path)
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise UserError(f"{what} {path} holds a name of {size} bytes ({part[:16]}…); the file system allows "
                            f"at most {limit} bytes per name: choose a shorter one")
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        pass  # not there yet; a file where a folder should be is the callers' to name
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UserError(f"{what} {path} is a loop of symbolic links (a link that leads back to itself); "
                            "point it at a real file or folder, or choose another path") from None
        if e.errno == errno.ENAMETOOLONG:
            raise UserError(f"{what} {path} is longer than the file system allows ({len(os.fsencode(str(path)))} "
                            "bytes); choose a shorter path") from None
        raise UserError(f"{what} {path} cannot be reached ({e.strerror}); choose another path") from None
    for p in (path, *path.parents):
        if p.is_symlink() and not p.exists():
            where = "" if p == path else f": the folder {p} above it"
            raise UserError(f"{what} {path}{where} is a symbolic link to {os.readlink(p)}, which does not exist; "
                            "create what it points to, remove the link, or choose another path")
    return path


def _name_max(path: Path) -> int:
    """Bytes the file system allows per file name, asked of the nearest existing folder above ``path``."""
    for folder in (*path.parents, Path(".")):
        with contextlib.suppress(OSError, ValueError):
            if folder.is_dir():
                return os.pathconf(folder, "PC_NAME_MAX")
    return NAME_MAX
