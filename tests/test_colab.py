"""The notebook's first cell, run as Colab runs it: clone, install, import; re-runs are harmless.

Each test builds a small stand-in for a Colab machine: a fresh virtual environment of the base
interpreter, a ``content/`` working folder, a ``google.colab`` stub, and ``REPO_URL`` pointing at a
bare clone of this repository's commits. The cell's own ``git clone`` and ``pip install -e`` run
for real, offline: dependencies come from this test environment, never from the network.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import site
import subprocess
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "hw1.ipynb"
URL_VARIABLE = "HW1_REPO_URL"
LITERAL_URL = re.compile(r"""^(REPO_URL\s*=\s*)(["']).*?\2""", re.M)

pytestmark = pytest.mark.skipif(
    shutil.which("git") is None or not (ROOT / ".git").exists(),
    reason="needs git and a git checkout of this repository",
)

# The kernel: argv = report file, cell file, then one JSON object of environment changes per
# run of the cell (os.environ changes reach the cell's pip, as a network coming back would).
KERNEL = '''\
import importlib, importlib.util, json, os, sys, types

google = types.ModuleType("google")
google.colab = types.ModuleType("google.colab")
sys.modules.update({"google": google, "google.colab": google.colab})

def resolve():
    """Where a fresh `import helpers` comes from (None: not importable)."""
    sys.modules.pop("helpers", None)
    importlib.invalidate_caches()
    try:
        return importlib.import_module("helpers").__file__
    except ImportError:
        return None

report_file, cell_file, *changes = sys.argv[1:]
report = {"before": resolve(), "torch": importlib.util.find_spec("torch") is not None, "runs": []}
code = compile(open(cell_file).read(), "<first cell>", "exec")
namespace = {"__name__": "__main__"}  # one namespace for all runs, as in a notebook
for change in changes:
    os.environ.update(json.loads(change))
    run = {}
    try:
        exec(code, namespace)
    except Exception as e:
        run["error"] = repr(e)
    run["helpers"] = resolve()
    run["cwd"] = os.getcwd()
    report["runs"].append(run)
json.dump(report, open(report_file, "w"))
'''

OFFLINE = {"PIP_NO_BUILD_ISOLATION": "0"}  # inverted: "0" turns isolation off (setuptools here)
ISOLATED = {"PIP_NO_BUILD_ISOLATION": "1"}  # needs setuptools from an index: fails, no network


@dataclass
class Colab:
    """A stand-in Colab machine: its interpreter, its /content folder, its environment."""

    python: Path
    content: Path
    env: dict[str, str]


def first_cell() -> str:
    """The source of the notebook's code cell that sets REPO_URL."""
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    sources = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    found = [s for s in sources if re.search(r"^REPO_URL\s*=", s, re.M)]
    assert len(found) == 1, f"expected one code cell that sets REPO_URL, found {len(found)}"
    return found[0]


def cell_for(url: str) -> str:
    """The first cell aimed at ``url``; a hard-coded URL is replaced, else HW1_REPO_URL serves."""
    return LITERAL_URL.sub(lambda m: f"{m[1]}{url!r}", first_cell(), count=1)


def git(*args: str, cwd: Path | None = None) -> str:
    """Run git quietly and return its stripped output."""
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def site_packages(python: Path) -> Path:
    """The purelib folder of ``python``'s environment."""
    ask = "import sysconfig; print(sysconfig.get_path('purelib'))"
    out = subprocess.run([str(python), "-c", ask], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip())


def make_venv(where: Path) -> Path:
    """A new venv of the base interpreter that sees this environment's packages, but not helpers."""
    venv.create(where, with_pip=False, symlinks=os.name != "nt")
    python = where / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    # Plain path lines: the folders join sys.path but their own .pth files are not processed, so
    # the editable hook of hw1-helpers there never loads, while torch, pip and setuptools import.
    lines = "".join(f"{p}\n" for p in site.getsitepackages())
    (site_packages(python) / "zz_test_environment.pth").write_text(lines)
    return python


def offline_env(url: str, tmp: Path) -> dict[str, str]:
    """This environment minus Python and pip settings, with pip offline and REPO_URL set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env.update({
        URL_VARIABLE: url,
        "PYTHONNOUSERSITE": "1",
        "PIP_CONFIG_FILE": os.devnull,  # no pip.conf: no index or find-links from this machine
        "PIP_NO_INDEX": "1",  # accept what is installed; any download attempt fails at once
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_CACHE_DIR": str(tmp / "pip-cache"),
    })
    return env


def run_kernel(colab: Colab, tmp: Path, *changes: dict[str, str]) -> dict:
    """Start a kernel in /content and run the first cell once per change; return its report."""
    kernel, cell, report = tmp / "kernel.py", tmp / "cell.py", tmp / "report.json"
    kernel.write_text(KERNEL)
    cell.write_text(cell_for(colab.env[URL_VARIABLE]))
    report.unlink(missing_ok=True)
    done = subprocess.run(
        [str(colab.python), str(kernel), str(report), str(cell), *map(json.dumps, changes)],
        cwd=colab.content, env=colab.env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(report.read_text())


def clones(content: Path) -> list[Path]:
    """Every git working tree under /content."""
    return sorted(p.parent for p in content.rglob(".git"))


def install_state() -> dict[str, tuple[int, int]]:
    """Names in this environment's site-packages, with size and mtime of hw1-helpers' files."""
    state = {}
    for folder in map(Path, site.getsitepackages()):
        for entry in folder.iterdir():
            if entry.name == "__pycache__":  # a fresh import may create it; not an install
                continue
            state[str(entry)] = (0, 0)
            if "hw1_helpers" in entry.name:
                for f in [entry, *entry.rglob("*")] if entry.is_dir() else [entry]:
                    state[str(f)] = (f.stat().st_size, f.stat().st_mtime_ns)
    return state


def in_clone(module: str | None, clone: Path) -> bool:
    """True when ``module`` is helpers/__init__.py of exactly this clone (not a nested one)."""
    return module is not None and Path(module).resolve().parent.parent == clone.resolve()


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 'GitHub' copy: a bare clone of this repository's committed history."""
    bare = tmp_path_factory.mktemp("github") / "hw1.git"
    git("clone", "-q", "--bare", str(ROOT), str(bare))
    return bare


@pytest.fixture
def colab(tmp_path: Path, origin: Path) -> Colab:
    """A fresh stand-in Colab machine whose REPO_URL is ``origin``."""
    content = tmp_path / "content"
    content.mkdir()
    return Colab(make_venv(tmp_path / "venv"), content, offline_env(str(origin), tmp_path))


def test_first_cell_clones_installs_and_reruns_harmlessly(colab: Colab, origin: Path,
                                                         tmp_path: Path) -> None:
    """Clone, install, import from the clone; a re-run and a restart change nothing."""
    before = install_state()
    report = run_kernel(colab, tmp_path, OFFLINE, OFFLINE)
    assert report["before"] is None, "helpers must not be importable before the cell runs"
    assert report["torch"], "the stand-in machine must have torch, as Colab does"
    clone = colab.content / "hw1"
    first, second = report["runs"]
    assert "error" not in first and in_clone(first["helpers"], clone), first
    assert "error" not in second and in_clone(second["helpers"], clone), second
    assert second["cwd"] == first["cwd"], "a re-run must not move the working directory"
    assert clones(colab.content) == [clone], "cloned once, not nested"
    assert git("remote", "get-url", "origin", cwd=clone) == str(origin)
    assert git("rev-parse", "HEAD", cwd=clone) == git("rev-parse", "HEAD", cwd=origin)

    # A kernel restart: the editable install now provides helpers, and the cell does nothing.
    restart = run_kernel(colab, tmp_path, OFFLINE)
    assert in_clone(restart["before"], clone), restart
    assert "error" not in restart["runs"][0] and in_clone(restart["runs"][0]["helpers"], clone)
    assert clones(colab.content) == [clone]
    assert install_state() == before, "the cell's pip install must not touch this environment"


def test_first_cell_recovers_from_a_failed_install(colab: Colab, tmp_path: Path) -> None:
    """A re-run after pip failed (no network) installs into the same clone, never a nested one."""
    before = install_state()
    failed, recovered = run_kernel(colab, tmp_path, ISOLATED, OFFLINE)["runs"]
    clone = colab.content / "hw1"
    assert "CalledProcessError" in failed.get("error", ""), failed
    assert "error" not in recovered and in_clone(recovered["helpers"], clone), recovered
    assert clones(colab.content) == [clone], "cloned once, not nested"
    assert install_state() == before, "the cell's pip install must not touch this environment"


def test_first_cell_installs_over_a_students_own_helpers_module(colab: Colab,
                                                                 tmp_path: Path) -> None:
    """A student's own helpers.py, importable before the cell, must not stop the install."""
    (tmp_path / "helpers.py").write_text("NOTE = 'a student file'\n")  # first on sys.path
    report = run_kernel(colab, tmp_path, OFFLINE)
    assert report["before"] == str(tmp_path / "helpers.py")
    run = report["runs"][0]
    assert "error" not in run and in_clone(run["helpers"], colab.content / "hw1"), run
