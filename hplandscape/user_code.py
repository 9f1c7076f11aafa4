"""Code a study names by import path: a model builder or a data loader that lives outside the package.

A study may name ``"package.module:attribute"`` (a model builder, a data loader). The module is
looked up on ``sys.path`` (``PYTHONPATH``) first and then beside the study's YAML file. What was
found is recorded as a :class:`CodeSource`: the import path, the file, the sha256 of its bytes and
the directory (if any) that had to be put on ``sys.path`` to import it. The study stores it in
``study.yaml`` and every run record, so that

- every process that runs the study (the CLI, local workers, SLURM array jobs on other nodes)
  imports the same module the same way (:meth:`CodeSource.load`), and
- a study whose code changed under it is refused by name rather than mixing runs of two models.

The hash covers the one file the attribute is defined in, not what that file imports.

Examples
--------
>>> is_import_path("mymodels:build"), is_import_path("resnet56")
(True, False)
>>> split_import_path("my.models:build_net")
('my.models', 'build_net')
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hplandscape.errors import UserError

_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
_IMPORT_PATH = re.compile(rf"^({_IDENTIFIER}(?:\.{_IDENTIFIER})*):({_IDENTIFIER}(?:\.{_IDENTIFIER})*)$")


def is_import_path(value: Any) -> bool:
    """Whether ``value`` is meant as ``module:attribute`` (it holds a colon), right or wrong."""
    return isinstance(value, str) and ":" in value


def split_import_path(value: str, what: str = "import path") -> tuple[str, str]:
    """``"pkg.mod:attr"`` → ``("pkg.mod", "attr")``; anything else is a :class:`UserError`."""
    m = _IMPORT_PATH.match(value) if isinstance(value, str) else None
    if not m:
        raise UserError(f"{what} {value!r} is not an import path of the form 'package.module:attribute' "
                        f"(dotted Python identifiers, one colon)")
    return m.group(1), m.group(2)


def file_sha256(path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(frozen=True)
class CodeSource:
    """Where a study's own code came from.

    ``import_path`` is ``"package.module:attribute"``; ``file`` the absolute path of the module's
    source file and ``sha256`` its hash when it was located; ``import_root`` the directory put on
    ``sys.path`` to import it (the study YAML's directory), or None when it imported from the
    ``sys.path`` the process already had (``PYTHONPATH``, an installed package).
    """

    import_path: str
    file: str
    sha256: str
    import_root: str | None = None

    def to_dict(self) -> dict:
        return {"import_path": self.import_path, "file": self.file, "sha256": self.sha256,
                "import_root": self.import_root}

    @classmethod
    def from_dict(cls, d: Any, what: str = "code source") -> "CodeSource":
        if not isinstance(d, dict) or set(d) != {"import_path", "file", "sha256", "import_root"} \
                or not all(isinstance(d[k], str) for k in ("import_path", "file", "sha256")) \
                or not (d["import_root"] is None or isinstance(d["import_root"], str)):
            raise UserError(f"{what} must be a mapping with import_path, file, sha256 and import_root, got {d!r}")
        return cls(d["import_path"], d["file"], d["sha256"], d["import_root"])

    def load(self, what: str = "code") -> Any:
        """Import the module the way it was located and return the attribute.

        Raises
        ------
        UserError
            The module no longer imports, the attribute is gone, or the file changed since the study
            recorded it (the message names the file and both hashes).
        """
        module_name, _ = split_import_path(self.import_path, what)
        if self.import_root and self.import_root not in sys.path:
            sys.path.insert(0, self.import_root)
        obj, file = _import(self.import_path, what)
        if file is not None and os.path.realpath(file) != os.path.realpath(self.file):
            raise UserError(f"{what} {self.import_path!r} now imports from {file}, but the study recorded {self.file}; "
                            f"make {self.file} the module found first (PYTHONPATH), or start a new study")
        now = file_sha256(self.file)
        if now != self.sha256:
            raise UserError(f"{what} {self.import_path!r}: its source file {self.file} changed since the study "
                            f"recorded it (sha256 {self.sha256[:12]}… then, {now[:12]}… now); restore it, or "
                            f"start a new study directory for the changed code")
        return obj


def locate(import_path: str, base_dir: str | os.PathLike | None = None, what: str = "import path") -> CodeSource:
    """Find ``import_path`` on ``sys.path``, else in ``base_dir``, and record where it came from.

    Parameters
    ----------
    import_path : str
        ``"package.module:attribute"``.
    base_dir : path, optional
        Where to look when the module is not importable as is: the directory of the study's YAML.
    what : str
        Names the culprit in messages, e.g. ``"model"`` or ``"data.python"``.

    Raises
    ------
    UserError
        Not an import path; the module cannot be imported (the ImportError's message is shown, and
        any other exception raised while importing it, with its type); the attribute is missing.
    """
    module_name, _ = split_import_path(import_path, what)
    top = module_name.split(".")[0]
    root = None
    if importlib.util.find_spec(top) is None and base_dir is not None:
        candidate = os.path.abspath(os.fspath(base_dir))
        if (Path(candidate) / f"{top}.py").is_file() or (Path(candidate) / top).is_dir():
            root = candidate
            if root not in sys.path:
                sys.path.insert(0, root)
    obj, file = _import(import_path, what, looked_in=base_dir)
    if file is None:
        raise UserError(f"{what} {import_path!r}: module {module_name!r} has no source file to record "
                        f"(a built-in or namespace module); define the attribute in a .py file")
    return CodeSource(import_path, os.path.abspath(file), file_sha256(file), root)


def _import(import_path: str, what: str, looked_in=None) -> tuple[Any, str | None]:
    module_name, attr = split_import_path(import_path, what)
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        missing = getattr(e, "name", None)
        if missing and missing != module_name and not module_name.startswith(missing + "."):
            # the module was found; something it imports was not
            raise UserError(f"{what} {import_path!r}: importing module {module_name!r} failed ({e})") from None
        where = f" or in {os.path.abspath(looked_in)}" if looked_in is not None else ""
        raise UserError(f"{what} {import_path!r}: cannot import module {module_name!r} ({e}); it is looked "
                        f"for on PYTHONPATH{where}") from None
    except Exception as e:  # the user's module raised while it ran: say so, not "cannot import"
        raise UserError(f"{what} {import_path!r}: importing module {module_name!r} raised "
                        f"{type(e).__name__}: {e}") from None
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{what} {import_path!r}: module {module_name!r} ({getattr(module, '__file__', '?')}) "
                            f"has no attribute {attr!r}")
        obj = getattr(obj, part)
    file = getattr(module, "__file__", None)
    if file is not None and file.endswith((".pyc", ".pyo")):
        file = importlib.util.source_from_cache(file) if "__pycache__" in file else file[:-1]
    return obj, file
