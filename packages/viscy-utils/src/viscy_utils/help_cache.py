"""A cache of the ``--help`` text of the LightningCLI subcommands, so that asking again answers at once.

``dynaclr fit --help`` has to import Lightning to describe the Trainer, and ``import lightning`` imports
torchmetrics, which imports torchvision (and through it ``torch._dynamo`` and sympy), scipy.signal and
matplotlib: most of the ~20 s it takes on a 2-core machine, none of it VisCy's. The help text only depends
on the installed packages, the VisCy sources and the terminal, so it is kept under :func:`cache_dir` keyed
by all of them: the first request renders it (and stores it), later ones print the stored text without
importing torch, with the default logger version (the start time) set to the time of the request. Only a
bare help request (``fit --help``, ``fit -h``) is cached; one with a config file (``fit -c fit.yml
--help``) is rendered every time.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

__all__ = ["START_TIME_FORMAT", "cache_dir", "help_cache_path", "run_with_help_cache"]

_logger = logging.getLogger(__name__)

_HELP_FLAGS = {"-h", "--help"}
START_TIME_FORMAT = r"%Y%m%d-%H%M%S"
"""``strftime`` format of the start time that ``VisCyCLI`` gives the default logger as its ``version``."""
_START_TIME = re.compile(r"'\d{8}-\d{6}'")
"""That start time as the help shows it; re-stamped with the time of the request when the help is printed."""


def cache_dir() -> Path:
    """Folder of the cached help: ``$VISCY_CACHE_DIR``, else ``$XDG_CACHE_HOME/viscy``, else ``~/.cache/viscy``."""
    if os.environ.get("VISCY_CACHE_DIR"):
        return Path(os.environ["VISCY_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "viscy"


def _installed_versions() -> list[str]:
    """``name==version`` of every installed distribution, sorted."""
    return sorted({f"{dist.metadata['Name']}=={dist.version}" for dist in importlib.metadata.distributions()})


def _source_stats(packages: Sequence[str]) -> list[tuple[str, int, int]]:
    """Path, size and modification time of every Python file of ``packages`` (editable installs change them)."""
    stats = []
    for package in packages:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            for path in sorted(Path(folder).rglob("*.py")):
                status = path.stat()
                stats.append((str(path), status.st_size, status.st_mtime_ns))
    return stats


def help_cache_path(argv: Sequence[str], packages: Sequence[str]) -> Path | None:
    """Where the help text of the command line ``argv`` is cached, or None if ``argv`` is not a bare help request.

    Parameters
    ----------
    argv : Sequence[str]
        The program name, the subcommand and its arguments, e.g. ``["dynaclr", "fit", "--help"]``.
    packages : Sequence[str]
        Importable packages whose sources shape the help text (their files' sizes and modification times are
        part of the key, besides the versions of all installed distributions, the Python version and the
        terminal's width and type).

    Returns
    -------
    Path | None
        A file under :func:`cache_dir` named by the hash of the key; None for anything but
        ``PROGRAM SUBCOMMAND --help`` (or ``-h``).
    """
    if len(argv) != 3 or argv[2] not in _HELP_FLAGS:
        return None
    key = {
        "argv": [Path(argv[0]).name, *argv[1:]],
        "python": sys.version,
        "columns": shutil.get_terminal_size().columns,
        "tty": sys.stdout.isatty(),
        "environment": [os.environ.get(name) for name in ("COLUMNS", "JSONARGPARSE_DEFAULT_ENV", "NO_COLOR")],
        "distributions": _installed_versions(),
        "sources": _source_stats(packages),
    }
    digest = hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]
    return cache_dir() / "help" / f"{Path(argv[0]).name}-{argv[1]}-{digest}.txt"


class _Tee(io.TextIOBase):
    """Writes to a stream and keeps a copy."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", "utf-8")


def _store(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically; a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        partial.write_text(text)
        os.replace(partial, path)
    except OSError as error:
        _logger.debug("Not caching the help text in %s: %s", path, error)


def run_with_help_cache(argv: Sequence[str], run: Callable[[], Any], packages: Sequence[str]) -> Any:
    """Run a command line, answering a bare help request from the cache when the cache has it.

    Parameters
    ----------
    argv : Sequence[str]
        The program name, the subcommand and its arguments (see :func:`help_cache_path`).
    run : Callable[[], Any]
        Runs the command line (for a help request: prints the help and raises ``SystemExit(0)``).
    packages : Sequence[str]
        Packages whose sources shape the help text (see :func:`help_cache_path`).

    Returns
    -------
    Any
        What ``run`` returns.

    Raises
    ------
    SystemExit
        After printing the help text (from the cache, or rendered by ``run`` and then cached).
    """
    path = help_cache_path(argv, packages)
    if path is None:
        return run()
    if path.is_file():
        now = datetime.now().strftime(START_TIME_FORMAT)
        sys.stdout.write(_START_TIME.sub(f"'{now}'", path.read_text()))
        sys.stdout.flush()
        raise SystemExit(0)
    tee = _Tee(sys.stdout)
    try:
        with contextlib.redirect_stdout(tee):
            return run()
    except SystemExit as exit_:
        if exit_.code in (0, None) and tee.copy.getvalue():
            _store(path, tee.copy.getvalue())
        raise
