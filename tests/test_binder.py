"""The Binder environment, built from binder/ alone, runs the quickstart offline.

Binder (repo2docker) installs binder/requirements.txt, then runs binder/postBuild from the repo
root. This test does the same in a fresh virtual environment, without the project's dev extras, and
executes the quickstart notebook with that environment's Jupyter, so the pins cannot drift.
"""
from __future__ import annotations

import os
import subprocess
import venv
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent


def test_binder_runtime_matches_a_python_we_support():
    runtime = (REPO / "binder" / "runtime.txt").read_text().strip()
    assert runtime.startswith("python-3.")
    minor = int(runtime.split(".")[1])
    assert minor >= 10


def test_quickstart_runs_in_an_environment_built_from_binder_files_alone(tmp_path):
    env_dir = tmp_path / "binder-env"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "VIRTUAL_ENV": str(env_dir),
           "JUPYTER_DATA_DIR": str(tmp_path / "jupyter-data"), "RAGKIT_CACHE_DIR": str(tmp_path / "cache")}
    env.pop("PYTHONPATH", None)

    def run(*cmd, cwd=REPO, timeout=900):
        done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        assert done.returncode == 0, f"{' '.join(map(str, cmd))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    run(bin_dir / "pip", "install", "-q", "-r", REPO / "binder" / "requirements.txt")
    run("bash", REPO / "binder" / "postBuild")
    # nothing from the test runner's environment: ragkit and the kernel come from the new env
    where = run(bin_dir / "python", "-c", "import ragkit, sys; print(ragkit.__file__, sys.prefix)").stdout
    assert str(env_dir) in where
    out = tmp_path / "quickstart-executed.ipynb"
    run(bin_dir / "jupyter", "nbconvert", "--to", "notebook", "--execute",
        "--ExecutePreprocessor.timeout=600", "--ExecutePreprocessor.kernel_name=python3",
        "--output", out, REPO / "notebooks" / "00-quickstart.ipynb", cwd=REPO / "notebooks")
    executed = out.read_text()
    assert '"output_type": "error"' not in executed
    assert "[1]" in executed and "The sources do not contain the answer." in executed
