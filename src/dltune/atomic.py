"""Writes that are whole or absent: a file or a folder is written under a new name beside its
target, flushed to disk (fsync), then renamed into place.

A reader, or a crash at any point, finds the previous file or folder or the new one whole,
never half of one and never a mix of the two. Nothing is written through a symbolic link: the
temporary name is new (created exclusively), and a rename replaces whatever entry holds the
target's name instead of writing into what it points to; write_folder refuses a link at the
target's name, and the links an old folder holds go with it, unfollowed.

A folder is replaced by swapping the two in one step where Linux can (renameat2's
RENAME_EXCHANGE: the target's name holds the old folder, then the new one, never neither);
elsewhere the old folder is renamed aside, the new one renamed in, the old one removed. What
each failure leaves:

    while the new folder is written      the old folder, untouched; the new one half-written
                                         beside it (removed at once, or after a kill by the
                                         next write of the same target)
    between the two renames (fallback)   no folder at the target's name: the old one, whole,
                                         beside it as .NAME.dltune-old-PID-..., the new one,
                                         whole, as .NAME.dltune-new-PID-... (rename either
                                         back by hand; the next write removes both)
    after the swap                       the new folder; the old one beside it until removed
                                         (by this write, or by the next one after a kill)

A file is replaced with one rename (os.replace), so its name always holds the old file or the
new one. Leftovers are named .NAME.dltune-KIND-PID-HEX (KIND: tmp, new, old): the next
successful write of the same target removes those whose process is gone, and this process's
own that none of its writes is busy with; another process's write in progress is left alone.
Two processes writing the same target at once each write whole; the last rename wins.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

MARK = ".dltune-"  # in every temporary name: .NAME.dltune-KIND-PID-HEX[SUFFIX]
_NAME_KEPT = 100  # characters of the target's name kept in a temporary one (NAME_MAX is 255)
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def write_file(target: str | Path, write: Callable[[Path], object]) -> Path:
    """Replace the file `target` whole: `write(temp)` fills a new empty file beside it (same
    folder and suffix, so that writers that go by the suffix work), which is flushed to disk
    and renamed onto `target`. If `write` raises, the temporary file is removed and `target`
    is untouched."""
    target = Path(target)
    temp = _temporary(target, "tmp", target.suffix)
    try:
        os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o666))
        write(temp)
        _fsync_file(temp)
        os.replace(temp, target)
    except BaseException:
        _remove(temp)
        raise
    finally:
        _done(temp)
    _fsync_folder(target.parent)
    remove_leftovers(target)
    return target


def write_bytes(target: str | Path, data: bytes) -> Path:
    """Replace the file `target` with `data`, whole (write_file)."""
    return write_file(target, lambda temp: temp.write_bytes(data))


def write_text(target: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Replace the file `target` with `text`, whole (write_file)."""
    return write_bytes(target, text.encode(encoding))


def write_folder(target: str | Path, fill: Callable[[Path], object]) -> Path:
    """Replace the folder `target` (created if absent) whole: `fill(folder)` writes the files
    into a new empty folder beside it, which is flushed to disk and takes `target`'s place; the
    old folder, if any, is then removed with everything in it. If `fill` raises, the new folder
    is removed and `target` is untouched. The caller decides whether an existing folder may go
    (it must not be the current folder, or hold it)."""
    target = Path(target)
    if target.is_symlink() or (os.path.lexists(target) and not target.is_dir()):
        raise NotADirectoryError(errno.ENOTDIR, "not a folder (links not followed)", str(target))
    new = _temporary(target, "new")
    old = None
    try:
        os.mkdir(new, 0o777)
        fill(new)
        _fsync_tree(new)
        old = _swap(new, target)
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)
        _done(new)
        raise
    try:
        _fsync_folder(target.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        _done(new, old)
    remove_leftovers(target)
    return target


def _swap(new: Path, target: Path) -> Path | None:
    """Put folder `new` at `target`'s name; where the old folder went (to be removed), if any."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return None
    if _exchange(new, target):
        return new  # new's name holds the old folder now
    aside = _temporary(target, "old")
    try:
        os.rename(target, aside)
        try:
            os.rename(new, target)
        except BaseException:
            os.rename(aside, target)  # the old folder back in place
            raise
    except BaseException:
        _done(aside)
        raise
    return aside


def leftovers(target: str | Path) -> list[Path]:
    """The temporary files and folders that writes of `target` left beside it (a crash, or a
    write in progress), whoever wrote them."""
    target = Path(target)
    prefix = _prefix(target)
    found = []
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            if entry.name.startswith(prefix) and _LEFTOVER.match(entry.name, len(prefix)):
                found.append(entry)
    return sorted(found)


def remove_leftovers(target: str | Path) -> int:
    """Remove what writes of `target` left beside it, but not another live process's, nor
    this process's writes in progress; how many."""
    gone = 0
    skip = len(_prefix(Path(target)))
    for entry in leftovers(target):
        match = _LEFTOVER.match(entry.name, skip)
        if match is None or entry.name in _busy:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and _alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            _remove(entry)
        gone += 1
    return gone


# what follows a target's prefix (.NAME.dltune-) in the names of its temporary files and folders
_LEFTOVER = re.compile(r"(?P<kind>tmp|new|old)-(?P<pid>\d+)-[0-9a-f]{8}")
_busy: set[str] = set()  # the temporary names this process's writes are busy with now
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _prefix(target: Path) -> str:
    return f".{target.name[:_NAME_KEPT]}{MARK}"


def _temporary(target: Path, kind: str, suffix: str = "") -> Path:
    """A new temporary name beside `target`, marked busy until `_done` (remove_leftovers
    spares it meanwhile, whichever thread of this process asks)."""
    name = f"{_prefix(target)}{kind}-{os.getpid()}-{secrets.token_hex(4)}{suffix}"
    _busy.add(name)
    return target.with_name(name)


def _done(*paths: Path | None) -> None:
    _busy.difference_update(p.name for p in paths if p is not None)


def _alive(pid: int) -> bool:
    """Whether process `pid` may still be writing (on this machine; unsure: yes)."""
    if os.name != "posix":
        return True  # os.kill there ends the process it asks about
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's, alive
        return True
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Swap the entries at `a` and `b` in one step (Linux renameat2); False where the system or
    the file system cannot, and nothing was changed."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # a C library without it (glibc < 2.28, musl)
        return False
    int_, text = ctypes.c_int, ctypes.c_char_p
    renameat2.argtypes = [int_, text, int_, text, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # an older kernel, or a file system without it (NFS): rename aside
    raise OSError(code, os.strerror(code), str(b))


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(folder: Path) -> None:
    """Flush every file under `folder`, then the folders themselves (their entries)."""
    for root, folders, files in os.walk(folder):
        for name in files:
            if not os.path.islink(os.path.join(root, name)):
                _fsync_file(Path(root, name))
        for name in folders:
            _fsync_folder(Path(root, name))
    _fsync_folder(folder)


def _fsync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename in it) where the system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on a folder: nothing more to do
        pass
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)
