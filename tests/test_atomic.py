"""dltune.atomic: a file or a folder is replaced whole or not at all, a crash at any step (a
raised error, or a real SIGKILL of a forked writer) leaves the old one or the new one whole,
nothing is written through a link, and the next write removes what a dead writer left."""

from __future__ import annotations

import os
import signal
import stat
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from dltune import atomic

OLD = {"a.json": "old a", "b.bin": "old b"}
NEW = {"a.json": "new a", "c.txt": "new c"}

forking = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def contents(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in folder.iterdir()}


def filler(files: dict[str, str], then: Callable[[], None] | None = None) -> Callable[[Path], None]:
    """A fill for write_folder: the first file, then `then()` (a crash, a wait), the rest."""

    def fill(folder: Path) -> None:
        for i, (name, text) in enumerate(files.items()):
            (folder / name).write_text(text)
            if i == 0 and then is not None:
                then()

    return fill


def old_folder(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    atomic.write_folder(target, filler(OLD))
    assert contents(target) == OLD and atomic.leftovers(target) == []
    return target


def crash() -> None:
    raise RuntimeError("crashed mid-write")


def killed_while(write: Callable[[], None], marker: Path) -> None:
    """Run `write` in a forked child until it touches `marker` (see `waiting`), then kill it
    with SIGKILL there and reap it: a real crash at that step, no cleanup code run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads (3.12+)
        pid = os.fork()
    if pid == 0:  # the child: write, and never return into pytest
        try:
            write()
        finally:
            os._exit(0)
    deadline = time.monotonic() + 60
    while not marker.exists():
        if os.waitpid(pid, os.WNOHANG)[0] or time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("the writer ended, or never reached the step to kill it at")
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def waiting(marker: Path) -> Callable[..., None]:
    def wait(*args: object, **kwargs: object) -> None:
        marker.touch()
        time.sleep(120)  # killed here

    return wait


# ---- folders ---------------------------------------------------------------------------------


def test_a_folder_is_created_then_replaced_whole(tmp_path):
    target = old_folder(tmp_path)
    atomic.write_folder(target, filler(NEW))
    assert contents(target) == NEW  # b.bin went with the old folder: replaced, not merged
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


@pytest.mark.parametrize("exchange", [True, False], ids=["exchange", "rename-aside"])
def test_a_fill_that_fails_leaves_the_old_folder_and_nothing_beside_it(
    tmp_path, monkeypatch, exchange
):
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = old_folder(tmp_path)
    with pytest.raises(RuntimeError, match="crashed mid-write"):
        atomic.write_folder(target, filler(NEW, crash))
    assert contents(target) == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    atomic.write_folder(target, filler(NEW))
    assert contents(target) == NEW
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_failed_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = old_folder(tmp_path)
    rename = os.rename

    def failing(src, dst):
        if Path(src).name.startswith(".model.dltune-new-"):
            raise OSError("the disk went away")
        rename(src, dst)

    monkeypatch.setattr(atomic.os, "rename", failing)
    with pytest.raises(OSError, match="disk went away"):
        atomic.write_folder(target, filler(NEW))
    assert contents(target) == OLD
    assert atomic.leftovers(target) == []


STEPS = [  # (where the writer is killed, whether the swap is one exchange or two renames)
    ("filling", True),
    ("filling", False),
    ("between-renames", False),  # an exchange has no step between two renames
    ("removing-the-old", True),
    ("removing-the-old", False),
]


@forking
@pytest.mark.parametrize(("step", "exchange"), STEPS)
def test_a_writer_killed_at_any_step_leaves_the_old_folder_or_the_new_one_whole(
    tmp_path, monkeypatch, step, exchange
):
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    target = old_folder(tmp_path)
    marker = tmp_path.parent / f"{tmp_path.name}-reached"
    fill = filler(NEW)
    if step == "filling":
        fill = filler(NEW, waiting(marker))
    elif step == "between-renames":
        rename = os.rename

        def stopping(src, dst):
            rename(src, dst)
            if Path(dst).name.startswith(".model.dltune-old-"):
                waiting(marker)()

        monkeypatch.setattr(atomic.os, "rename", stopping)
    else:
        monkeypatch.setattr(atomic.shutil, "rmtree", waiting(marker))
    killed_while(lambda: atomic.write_folder(target, fill), marker)
    monkeypatch.undo()

    left = atomic.leftovers(target)
    assert left  # the dead writer's folders, beside the target
    found = [contents(target)] if target.exists() else []
    found += [contents(p) for p in left]
    assert all(c in (OLD, NEW) or step == "filling" for c in found)
    if step == "filling":
        assert contents(target) == OLD
    elif step == "between-renames":
        assert not target.exists() and OLD in found and NEW in found  # both whole, beside
    else:
        assert contents(target) == NEW

    atomic.write_folder(target, filler({"d": "next"}))  # the next write cleans up
    assert contents(target) == {"d": "next"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_live_writers_folder_is_left_alone_and_this_process_s_own_is_not(tmp_path):
    target = old_folder(tmp_path)
    live = tmp_path / f".model.dltune-new-{os.getppid()}-0123abcd"  # another process, alive
    live.mkdir()
    unrelated = tmp_path / ".model.dltune-new-notapid"
    unrelated.mkdir()
    ours = tmp_path / f".model.dltune-old-{os.getpid()}-4567cdef"  # a failed removal of ours
    ours.mkdir()
    seen: list[list[Path]] = []

    def fill(folder: Path) -> None:  # meanwhile another write's cleanup spares this one
        atomic.remove_leftovers(target)
        seen.append(atomic.leftovers(target))
        (folder / "a.json").write_text("new a")

    atomic.write_folder(target, fill)
    assert any(p.name.startswith(".model.dltune-new-") and p != live for p in seen[0])
    assert live.is_dir() and unrelated.is_dir() and not ours.exists()


def test_links_in_an_old_folder_are_not_followed_and_a_linked_target_is_refused(tmp_path):
    target = old_folder(tmp_path)
    outside = tmp_path / "outside.json"
    outside.write_text("someone else's")
    (target / "a.json").unlink()
    (target / "a.json").symlink_to(outside)
    atomic.write_folder(target, filler(NEW))
    assert outside.read_text() == "someone else's"
    assert not (target / "a.json").is_symlink() and contents(target) == NEW

    link = tmp_path / "link"
    link.symlink_to(target)
    with pytest.raises(NotADirectoryError):
        atomic.write_folder(link, filler(OLD))
    assert contents(target) == NEW and link.is_symlink()


# ---- files -----------------------------------------------------------------------------------


def test_a_file_is_replaced_by_a_rename_and_a_failed_write_leaves_the_old_one(tmp_path):
    target = tmp_path / "report.json"
    atomic.write_text(target, "old")
    inode = target.stat().st_ino
    with pytest.raises(RuntimeError, match="crashed"):

        def half(temp: Path) -> None:
            temp.write_text("half of the n")
            crash()

        atomic.write_file(target, half)
    assert target.read_text() == "old" and target.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json"]
    atomic.write_text(target, "new")
    assert target.read_text() == "new"
    assert target.stat().st_ino != inode  # a new file took the name: a reader keeps the old


def test_a_file_keeps_its_suffix_while_written_and_gets_the_usual_permissions(tmp_path):
    seen: list[str] = []

    def write(temp: Path) -> None:
        seen.append(temp.name)
        temp.write_bytes(b"x")

    umask = os.umask(0o022)
    try:
        atomic.write_file(tmp_path / "model.keras", write)
    finally:
        os.umask(umask)
    assert seen[0].startswith(".model.keras.dltune-tmp-") and seen[0].endswith(".keras")
    assert stat.S_IMODE((tmp_path / "model.keras").stat().st_mode) == 0o644


def test_a_linked_file_is_replaced_not_written_through(tmp_path):
    outside = tmp_path / "outside.csv"
    outside.write_text("keep me")
    link = tmp_path / "predictions.csv"
    link.symlink_to(outside)
    atomic.write_text(link, "prediction\n1\n")
    assert outside.read_text() == "keep me"
    assert not link.is_symlink() and link.read_text() == "prediction\n1\n"


@forking
def test_a_file_writer_killed_mid_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "predictions.csv"
    atomic.write_text(target, "old")
    marker = tmp_path.parent / f"{tmp_path.name}-reached"

    def write(temp: Path) -> None:
        temp.write_text("half")
        waiting(marker)()

    killed_while(lambda: atomic.write_file(target, write), marker)
    assert target.read_text() == "old" and len(atomic.leftovers(target)) == 1
    atomic.write_text(target, "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.csv"]
