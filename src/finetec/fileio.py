"""Safe file output: atomic writes, outputs that are never clobbered, and folder locks.

- :func:`atomic_path`: write to a temporary file beside the target, then rename; a crash or a
  user error never leaves a partly written output file behind.
- :func:`new_output`: the same, but the final step cannot replace a file that appeared in the
  meantime unless ``overwrite`` is set (``os.link`` fails when the target exists), so of two
  processes writing one output without ``--overwrite`` exactly one succeeds.
- :class:`FolderLock`: one writer per folder (a training run folder), an ``fcntl.flock`` lock
  that the operating system releases when the holder dies, so a killed run never leaves a
  stale lock.

Temporary files are named ``.<target name>.tmp<pid>-<random><suffix>``. One left behind by a
killed process is removed by :func:`remove_stale_temps` the next time that output is written
(only when its process is gone, so a concurrent writer's file is never touched).
"""
from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Iterator

from finetec.errors import FinetecError

_TEMP = re.compile(r"^\.(?P<name>.+)\.tmp(?P<pid>\d+)-[^/]*$")


def _temp_prefix(target: Path) -> str:
    return f".{target.name}.tmp{os.getpid()}-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success.

    ``suffix`` defaults to the target's suffix so that libraries choosing a format by
    extension (``np.savez``, matplotlib, imageio) behave as with the final name.
    """
    with _temporary(path, suffix) as (tmp_path, target):
        yield tmp_path
        _finish(tmp_path)
        os.replace(tmp_path, target)


@contextlib.contextmanager
def _temporary(path: str | os.PathLike, suffix: str | None) -> Iterator[tuple[Path, Path]]:
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(target),
                                   suffix=suffix if suffix is not None else "".join(target.suffixes) or ".tmp",
                                   dir=target.parent)
    except OSError as e:
        raise FinetecError(f"cannot create the output file ({e.strerror or e})", target) from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path, target
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def _finish(tmp_path: Path) -> None:
    if tmp_path.exists():  # mkstemp creates 0600; give the output the user's usual permissions
        os.chmod(tmp_path, 0o666 & ~_umask())


@contextlib.contextmanager
def new_output(path: str | os.PathLike, overwrite: bool = False, suffix: str | None = None) -> Iterator[Path]:
    """Like :func:`atomic_path`, but refuse an existing ``path`` unless ``overwrite``.

    The existence check happens twice: before any work (a quick, friendly refusal) and in the
    final step itself, which links the finished temporary file to ``path`` (``os.link`` fails
    when ``path`` exists): two processes writing one new output cannot both succeed, and the
    loser's temporary file is removed. A stale temporary file of this output left by a killed
    process is removed first.
    """
    target = Path(path)
    check_output(target, overwrite)
    remove_stale_temps(target.parent, target.name)
    with _temporary(target, suffix) as (tmp_path, target):
        yield tmp_path
        _finish(tmp_path)
        if overwrite:
            os.replace(tmp_path, target)
            return
        try:
            os.link(tmp_path, target)
        except FileExistsError:
            raise FinetecError("already exists (another process wrote it meanwhile; use --overwrite to "
                               "replace it)", target) from None
        except OSError as e:
            if e.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise FinetecError(f"cannot create the output file ({e.strerror or e})", target) from None
            _create_exclusive(tmp_path, target)  # a file system without hard links
        tmp_path.unlink()


def check_output(path: str | os.PathLike, overwrite: bool = False, source: str | os.PathLike | None = None) -> None:
    """The quick checks of an output file before any work: not a folder, not the input ``source``,
    not existing unless ``overwrite`` (FinetecError otherwise). :func:`new_output` checks again
    when it publishes the file."""
    target = Path(path)
    if target.is_dir():
        raise FinetecError("is a folder; give an output file name", target)
    exists = target.exists() or target.is_symlink()
    if exists and source is not None and Path(source).exists() and Path(source).resolve() == target.resolve():
        raise FinetecError("the output is the input file; choose another name", target)
    if exists and not overwrite:
        raise FinetecError("already exists (use --overwrite to replace it)", target)


def _create_exclusive(tmp_path: Path, target: Path) -> None:
    """Copy ``tmp_path`` to a new ``target`` created with O_EXCL (file systems without links)."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except FileExistsError:
        raise FinetecError("already exists (another process wrote it meanwhile; use --overwrite to "
                           "replace it)", target) from None
    try:
        with os.fdopen(fd, "wb") as out, open(tmp_path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            target.unlink()
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists but belongs to someone else
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike, name: str | None = None, all_pids: bool = False) -> list[Path]:
    """Remove temporary files (and staging folders) of :func:`atomic_path` / :func:`new_output`
    in ``folder`` whose process is gone (``all_pids``: every one, for a folder the caller holds
    locked); ``name`` limits it to one target's temporaries. Returns what was removed."""
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for e in entries:
        m = _TEMP.match(e.name)
        if not m or (name is not None and m.group("name") != name):
            continue
        if not all_pids and _pid_alive(int(m.group("pid"))):
            continue
        with contextlib.suppress(OSError):
            if e.is_dir(follow_symlinks=False):
                shutil.rmtree(e.path)
            else:
                os.unlink(e.path)
            removed.append(Path(e.path))
    return removed


def staging_dir(target: str | os.PathLike) -> Path:
    """A fresh temporary folder beside ``target`` (named like the temporary files, so that
    :func:`remove_stale_temps` removes it when its process dies before publishing it)."""
    t = Path(target)
    t.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=_temp_prefix(t), dir=t.parent))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


class FolderLock:
    """An exclusive lock on a folder for one writer: ``with FolderLock(out, "training"): ...``.

    Taken with ``fcntl.flock`` on ``<folder>/.lock`` (created as needed; the holder's PID and
    host name are written into it). The kernel releases the lock when the holding process ends,
    however it ends, so a killed run leaves no stale lock; the file is removed on a normal
    release. A second process fails at once with a one-line :class:`FinetecError` naming the
    holder. ``created`` tells whether acquiring made the folder (so a run that fails during
    setup can remove it again with :meth:`release` ``(remove_folder=True)``).
    """

    NAME = ".lock"

    def __init__(self, folder: str | os.PathLike, what: str = "a run"):
        self.folder, self.what = Path(folder), what
        self.path = self.folder / self.NAME
        self.fd: int | None = None
        self.created = False

    def acquire(self) -> "FolderLock":
        import fcntl

        if self.folder.exists() and not self.folder.is_dir():
            raise FinetecError("exists and is not a folder", self.folder)
        try:
            self.created = not self.folder.exists()
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise FinetecError(f"cannot create the folder ({e.strerror or e})", self.folder) from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as e:
                raise FinetecError(f"cannot create the lock file ({e.strerror or e})", self.path) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                holder = _read_holder(fd)
                os.close(fd)
                raise FinetecError(f"in use: {holder} is writing {self.what} into this folder (wait for it "
                                   "to finish or choose another folder)", self.folder) from None
            try:  # the file we locked may have been removed by the previous holder's release
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode())
        self.fd = fd
        return self

    def release(self, remove_folder: bool = False) -> None:
        if self.fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        os.close(self.fd)  # closing the descriptor releases the flock
        self.fd = None
        if remove_folder and self.created:
            with contextlib.suppress(OSError):
                self.folder.rmdir()  # only when empty

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return f"process {text[4:]}" if text.startswith("pid ") else "another process"


__all__ = ["atomic_path", "new_output", "check_output", "write_text_atomic", "remove_stale_temps", "staging_dir", "FolderLock"]


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
