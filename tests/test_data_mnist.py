"""MNIST: lookup order, download once from a local HTTP server, checksums, offline errors.

Every request goes to a server on 127.0.0.1 that the test starts; nothing reaches the internet.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dltune.data import MNIST_FILES, download_files, load_data, mnist_dir, write_idx
from dltune.data.download import DownloadFailed
from dltune.errors import DataError


class Server:
    """A local HTTP server for a dict of name -> bytes; counts requests; can cut bodies short."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.requests: list[str] = []
        self.truncate: set[str] = set()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                server.requests.append(name)
                if name not in server.files:
                    self.send_error(404)
                    return
                body = server.files[name]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if name in server.truncate:  # an interrupted transfer: half the body, then EOF
                    self.wfile.write(body[: len(body) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mnist/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def gz_idx(array: np.ndarray, tmp: Path, name: str) -> bytes:
    return write_idx(tmp / name, array).read_bytes()


@pytest.fixture
def tiny_mnist(tmp_path: Path) -> dict[str, bytes]:
    """The four MNIST file names with small gz IDX contents (100 train, 30 test, 3 classes)."""
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    train_y = (np.arange(100) % 3).astype(np.uint8)
    test_y = (np.arange(30) % 3).astype(np.uint8)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (100, 4, 4), dtype=np.uint8),
        "train-labels-idx1-ubyte.gz": train_y,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (30, 4, 4), dtype=np.uint8),
        "t10k-labels-idx1-ubyte.gz": test_y,
    }
    return {name: gz_idx(a, src, name) for name, a in arrays.items()}


@pytest.fixture
def server(tiny_mnist: dict[str, bytes]) -> Iterator[Server]:
    s = Server(tiny_mnist)
    yield s
    s.close()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache; no DLTUNE_DATA_DIR. Returns the MNIST cache directory."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("DLTUNE_DATA_DIR", raising=False)
    return tmp_path / "cache" / "dltune" / "mnist"


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"  # nothing listens there now: connection refused


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_once_into_the_cache(
    server: Server, env: Path, tiny_mnist: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, data in tiny_mnist.items():
        monkeypatch.setitem(MNIST_FILES, name, md5(data))
    monkeypatch.setenv("DLTUNE_MNIST_MIRROR", f"{closed_port_url()}, {server.url}")
    ds = load_data("mnist")
    assert sorted(server.requests) == sorted(tiny_mnist)
    assert ds.name == "mnist" and ds.source == "mnist"
    assert ds.sizes == (85, 15, 30) and ds.n_features == 16 and ds.classes == [0, 1, 2]
    assert ds.split == "test given; validation 15% of train, stratified, seed 0"
    assert mnist_dir() == env and leftovers(env) == sorted(tiny_mnist)
    again = load_data("mnist")
    assert len(server.requests) == 4  # the second load made no request
    assert again.fingerprint() == ds.fingerprint()


def test_local_copies_are_used_as_they_are(
    server: Server, tmp_path: Path, env: Path, tiny_mnist: dict[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    local = tmp_path / "local"
    local.mkdir()
    for name, data in tiny_mnist.items():  # uncompressed, and md5s that no download would match
        (local / name.removesuffix(".gz")).write_bytes(gzip.decompress(data))
    monkeypatch.setenv("DLTUNE_MNIST_MIRROR", server.url)
    assert load_data("mnist", data_dir=local).sizes == (85, 15, 30)
    monkeypatch.setenv("DLTUNE_DATA_DIR", str(local))
    assert load_data("mnist").sizes == (85, 15, 30)
    assert server.requests == [] and not env.exists()


def test_missing_file_is_fetched_from_the_next_mirror(
    server: Server, env: Path, tiny_mnist: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, data in tiny_mnist.items():
        monkeypatch.setitem(MNIST_FILES, name, md5(data))
    env.mkdir(parents=True)
    first = "t10k-labels-idx1-ubyte.gz"
    (env / first).write_bytes(tiny_mnist[first])  # one file is already cached
    server.files = {}  # the first mirror answers 404 for every MNIST file ...
    other = Server(tiny_mnist)  # ... the second has them
    try:
        monkeypatch.setenv("DLTUNE_MNIST_MIRROR", f"{server.url} {other.url}")
        assert load_data("mnist").sizes == (85, 15, 30)
        assert len(server.requests) == 3 and sorted(other.requests) == sorted(
            n for n in tiny_mnist if n != first
        )
    finally:
        other.close()


def test_checksum_mismatch_deletes_the_download(server: Server, tmp_path: Path) -> None:
    name = "t10k-labels-idx1-ubyte.gz"
    dest = tmp_path / "dl"
    wrong = "0" * 32
    with pytest.raises(DataError) as info:
        download_files({name: wrong}, [server.url], dest, timeout=5)
    msg = str(info.value)
    actual = md5(server.files[name])
    assert "checksum mismatch" in msg and name in msg and wrong in msg and actual in msg
    assert leftovers(dest) == []  # neither the file nor its temporary remains


def test_download_files_checks_and_skips_existing(server: Server, tmp_path: Path) -> None:
    files = {n: md5(d) for n, d in server.files.items()}
    dest = tmp_path / "dl"
    paths = download_files(files, [server.url], dest, timeout=5)
    assert {p.name for p in paths.values()} == set(files)
    assert all(p.read_bytes() == server.files[p.name] for p in paths.values())
    download_files(files, [server.url], dest, timeout=5)
    assert len(server.requests) == 4


def test_interrupted_download_leaves_nothing(server: Server, tmp_path: Path) -> None:
    name = "train-images-idx3-ubyte.gz"
    server.truncate.add(name)
    dest = tmp_path / "dl"
    with pytest.raises(DownloadFailed) as info:
        download_files({name: md5(server.files[name])}, [server.url], dest, timeout=5)
    assert info.value.missing == [name] and str(dest) in str(info.value)
    assert leftovers(dest) == []


def test_offline_error_names_files_and_directory(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLTUNE_MNIST_MIRROR", closed_port_url())
    with pytest.raises(DataError) as info:
        load_data("mnist")
    msg = str(info.value)
    for word in (*MNIST_FILES, str(env), "data_dir", "DLTUNE_DATA_DIR", "DLTUNE_MNIST_MIRROR"):
        assert word in msg, f"{word!r} not in: {msg}"
    assert leftovers(env) == []


def test_offline_error_names_the_data_dir_given(
    tmp_path: Path, env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DLTUNE_MNIST_MIRROR", closed_port_url())
    local = tmp_path / "mine"
    local.mkdir()
    write_idx(local / "t10k-images-idx3-ubyte.gz", np.zeros((20, 2, 2), np.uint8))
    write_idx(local / "t10k-labels-idx1-ubyte.gz", np.arange(20, dtype=np.uint8) % 2)
    with pytest.raises(DataError) as info:
        load_data("mnist", data_dir=local)
    msg = str(info.value)
    assert f"in {local}" in msg and "train-images-idx3-ubyte.gz" in msg
    assert "t10k-images-idx3-ubyte.gz" not in msg  # found locally, so not missing
    assert "pass their folder itself as the data source" in msg


class Endless:
    """A local server whose one file never ends: sent a few bytes at a time, slowly (`pause`
    seconds between writes) or as fast as it can, with no Content-Length."""

    def __init__(self, pause: float) -> None:
        stop = self.stop = threading.Event()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.end_headers()
                try:
                    while not stop.is_set():
                        self.wfile.write(b"x" * 1024)
                        self.wfile.flush()
                        stop.wait(pause)
                except OSError:  # the client hung up: what the test wants
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.mark.parametrize(
    ("pause", "limits", "why"),
    [
        (0.02, {"deadline": 0.5}, "not done after 0.5 s"),  # a trickle: no read ever times out
        (0.0, {"max_bytes": 200_000}, "more than 200000 bytes"),  # a flood
    ],
    ids=["trickle", "flood"],
)
def test_a_download_has_a_deadline_and_a_size_cap(tmp_path: Path, pause, limits, why) -> None:
    from dltune.data.download import download_files

    endless = Endless(pause)
    try:
        with pytest.raises(DownloadFailed, match=why) as failed:
            download_files({"f.gz": "0" * 32}, [endless.url], tmp_path, timeout=5, **limits)
    finally:
        endless.close()
    assert failed.value.missing == ["f.gz"]
    assert list(tmp_path.iterdir()) == []  # nothing half-written stays
