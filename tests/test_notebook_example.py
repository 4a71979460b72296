"""examples/tune_digits.ipynb executed by a real Jupyter kernel (nbclient, ipykernel), as a user
runs it: every cell without an error, each study's progress shown in its cell (a PyTorch and a
Keras build), the results and the report shown as HTML."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

import nbclient
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tune_digits.ipynb"
PNG = re.compile(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')

pytestmark = pytest.mark.slow  # a kernel, two small studies, their reports: about 30-60 s


@pytest.fixture(scope="session")
def executed(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Any:
    """The notebook as a kernel left it, run in a folder of its own (its notebook.db there).
    Under pytest-xdist one worker runs it and the others read what it wrote (the folder above
    each worker's own is the session's): the notebook is executed once per session."""
    if worker_id == "master":  # no xdist
        return _execute(tmp_path_factory)
    from filelock import FileLock  # torch's own dependency

    done = tmp_path_factory.getbasetemp().parent / "tune_digits.executed.ipynb"
    with FileLock(f"{done}.lock"):
        if not done.exists():
            nbformat.write(_execute(tmp_path_factory), done)
    return nbformat.read(done, as_version=4)


def _execute(tmp_path_factory: pytest.TempPathFactory) -> Any:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # First, where the kernel runs from: this Python, and dltune from this checkout.
    notebook.cells.insert(
        0, nbformat.v4.new_code_cell("import sys, dltune\nprint(sys.executable, dltune.__file__)")
    )
    folder = tmp_path_factory.mktemp("notebook")
    client = nbclient.NotebookClient(
        notebook,
        km=_kernel_of_this_python(tmp_path_factory.mktemp("kernels")),
        timeout=600,
        resources={"metadata": {"path": str(folder)}},
    )
    client.execute()  # the kernel inherits this environment (PYTHONPATH: dltune's sources)
    return notebook


def _kernel_of_this_python(folder: Path) -> KernelManager:
    """An ipykernel run by this Python, whatever kernels the machine has registered (a user's
    "python3" may point at another Python)."""
    spec = folder / "dltune-test"
    spec.mkdir()
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    kernel = {"argv": argv, "display_name": "dltune test", "language": "python"}
    (spec / "kernel.json").write_text(json.dumps(kernel))
    specs = KernelSpecManager(kernel_dirs=[str(folder)], ensure_native_kernel=False)
    return KernelManager(kernel_name="dltune-test", kernel_spec_manager=specs)


def _outputs(cell: Any, kind: str) -> list[Any]:
    return [o for o in cell.outputs if o.output_type == kind]


def _html(cell: Any) -> list[str]:
    return [o.data["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]


def _cell_running(notebook: Any, text: str) -> Any:
    (cell,) = [c for c in notebook.cells if c.cell_type == "code" and text in c.source]
    return cell


def test_the_kernel_runs_this_python_and_this_checkouts_dltune(executed):
    import dltune

    (printed,) = _outputs(executed.cells[0], "stream")
    python, package = printed.text.split()
    assert Path(python).resolve() == Path(sys.executable).resolve()
    assert Path(package).resolve() == Path(dltune.__file__).resolve()


def test_every_cell_ran_without_an_error(executed):
    code = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code)
    assert [o for c in code for o in _outputs(c, "error")] == []


def _check_tuned(cell: Any, study: str) -> None:
    """A tune() cell: its progress display, closed with a final line; its result as HTML."""
    (progress, result) = _html(cell)
    assert _outputs(cell, "display_data")[0].data["text/html"] == progress
    assert f"<b>{study}</b> in sqlite:///notebook.db" in progress
    assert "4 of 4 done" in progress and "Search finished: 4 trials" in progress
    assert _outputs(cell, "execute_result")[0].data["text/html"] == result
    assert f"<h3>dltune: study {study}</h3>" in result
    for part in ("Best configuration", "How it was chosen", "Optimization history"):
        assert f"<h4>{part}</h4>" in result
    assert re.search(r"test accuracy</td><td>0\.\d{4}</td>", result)
    (image,) = PNG.findall(result)
    assert base64.b64decode(image).startswith(b"\x89PNG")


def test_the_pytorch_study_shows_its_progress_and_its_result(executed):
    cell = _cell_running(executed, 'study_name="torch-digits"')
    _check_tuned(cell, "torch-digits")
    # build(hp)'s own hyperparameters are the configuration's
    result = _html(cell)[1]
    assert '<td class="key">units</td>' in result and '<td class="key">dropout</td>' in result


def test_the_report_shows_inline(executed):
    cell = _cell_running(executed, "result.report()")
    (page,) = _html(cell)
    assert page.startswith("<iframe srcdoc=") and "dltune report: study torch-digits" in page


def test_the_keras_study_shows_its_progress_and_its_result(executed):
    cell = _cell_running(executed, 'study_name="keras-digits"')
    _check_tuned(cell, "keras-digits")
    assert '<td class="key">activation</td>' in _html(cell)[1]
