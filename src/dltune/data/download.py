"""Download files once, from a list of mirrors, md5-verified and written atomically.

A file is streamed into a hidden temporary file next to its destination and renamed into place
only after its md5 matched, so an interrupted or corrupt download never leaves a file that looks
complete. Every network wait has a timeout, every file an overall deadline (a server that
trickles a byte at a time never times a read out) and a size cap (a server that sends without
end never fills the disk): past either, the transfer stops and the next mirror is tried.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from dltune.errors import DataError

DEFAULT_TIMEOUT = 30.0  # seconds, per connection attempt and per read
DEFAULT_DEADLINE = 600.0  # seconds, for one file from one mirror, all reads together
MAX_BYTES = 256 * 2**20  # one file (MNIST's largest is 9.9 MB)
_BLOCK = 1 << 16


class TransferRefused(OSError):
    """A transfer stopped by dltune: past its deadline, or larger than its cap."""


class DownloadFailed(DataError):
    """No mirror could deliver some files; ``missing`` names them, ``reasons`` says why."""

    def __init__(self, message: str, missing: list[str], reasons: str) -> None:
        super().__init__(message)
        self.missing = missing
        self.reasons = reasons


def cache_dir(*parts: str) -> Path:
    """``$XDG_CACHE_HOME/dltune/...`` (default ``~/.cache/dltune/...``)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base, "dltune", *parts)


def _fetch(
    url: str,
    dest: Path,
    md5: str,
    timeout: float,
    deadline: float = DEFAULT_DEADLINE,
    max_bytes: int = MAX_BYTES,
) -> str | None:
    """Download ``url`` to ``dest`` atomically. Returns None on success, or the actual md5 when
    it does not match ``md5`` (the temporary file is deleted). Network errors propagate, and a
    TransferRefused past `deadline` seconds or `max_bytes` bytes."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    ends = time.monotonic() + deadline
    try:
        digest = hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            expected = resp.headers.get("Content-Length")
            if expected is not None and expected.isdigit() and int(expected) > max_bytes:
                raise TransferRefused(f"{expected} bytes announced, more than {max_bytes}")
            received = 0
            while block := resp.read1(_BLOCK):  # what has come: the deadline is checked
                digest.update(block)
                out.write(block)
                received += len(block)
                if received > max_bytes:
                    raise TransferRefused(f"more than {max_bytes} bytes sent")
                if time.monotonic() > ends:
                    raise TransferRefused(f"not done after {deadline:g} s")
            # read(n) returns b"" on a connection cut short instead of raising: check the size.
            if expected is not None and expected.isdigit() and received != int(expected):
                raise http.client.IncompleteRead(b"", int(expected) - received)
        actual = digest.hexdigest()
        if actual != md5.lower():
            return actual
        os.replace(tmp, dest)  # atomic on one filesystem
        return None
    finally:
        tmp.unlink(missing_ok=True)  # interrupted, failed or corrupt: nothing half-written stays


def download_files(
    files: dict[str, str],
    mirrors: list[str],
    dest: Path,
    timeout: float = DEFAULT_TIMEOUT,
    deadline: float = DEFAULT_DEADLINE,
    max_bytes: int = MAX_BYTES,
) -> dict[str, Path]:
    """Make sure each ``files`` name (mapped to its md5) is in ``dest``, downloading the missing
    ones from the first mirror that serves them (``mirror + name``), each within `deadline`
    seconds and `max_bytes` bytes.

    Files already in ``dest`` are kept as they are (no request is made). Returns name -> path.
    Raises DataError naming the file, expected and actual md5 when a download does not match
    (after trying every mirror), or :class:`DownloadFailed` naming the missing files and
    ``dest`` when no mirror delivered them.
    """
    dest = Path(dest)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"cannot create the download directory {dest}: {e}") from None
    paths = {name: dest / name for name in files}
    missing = [name for name in files if not paths[name].is_file()]
    live = list(mirrors)  # mirrors that could be reached; an unreachable one is not retried
    errors: dict[str, str] = {}
    mismatches: dict[str, list[str]] = {}
    for name in missing:
        for mirror in list(live):
            url = mirror.rstrip("/") + "/" + name
            try:
                actual = _fetch(url, paths[name], files[name], timeout, deadline, max_bytes)
            except urllib.error.HTTPError as e:  # reached, but no such file there
                errors[name] = f"{url}: HTTP {e.code} {e.reason}"
                continue
            except (OSError, http.client.HTTPException) as e:  # unreachable, timeout, cut off
                errors[name] = f"{url}: {getattr(e, 'reason', None) or e}"
                live.remove(mirror)
                continue
            if actual is None:
                errors.pop(name, None)
                break
            mismatches.setdefault(name, []).append(
                f"{name} from {url}: expected md5 {files[name]}, got {actual}"
            )
            errors[name] = f"{url}: md5 mismatch"
    failed = [name for name in missing if not paths[name].is_file()]
    bad = [m for name in failed for m in mismatches.get(name, [])]
    if bad:
        raise DataError(
            "checksum mismatch for " + "; ".join(bad) + ". The download was deleted; the mirror "
            "may serve a different or damaged file. Try again later or another mirror."
        )
    if failed:
        reasons = "; ".join(errors.get(n, f"{n}: no reachable mirror left") for n in failed)
        if not mirrors:
            reasons = "no mirror given"
        raise DownloadFailed(
            f"could not download {', '.join(failed)} ({reasons}). Put these files in {dest}.",
            failed,
            reasons,
        )
    return paths
