"""The wheel as pip would install it: effopt alone (typed), metadata twine accepts, an import that needs torch alone.

Builds the wheel from the repository root once per module, as `pip wheel` does for a user, and the sdist.
"""

import email.message
import email.parser
import importlib.util
import shutil
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

import effopt

ROOT = Path(__file__).resolve().parents[1]
MAX_FILE_BYTES = 1_000_000
NOT_SHIPPED = ("reference", "examples", "benchmarks", "tests")
PIP = (sys.executable, "-m", "pip", "--disable-pip-version-check", "-q")


def _run(*args: str, cwd: Path = ROOT, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, check=False, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = ROOT / "build"
    ours = not build.exists()  # setuptools' build/ is left in the repository; remove it if this build made it
    try:
        _run(*PIP, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(out), ".")
    finally:
        if ours:
            shutil.rmtree(build, ignore_errors=True)
    (built,) = out.glob("effopt-*.whl")
    return built


@pytest.fixture(scope="module")
def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def _metadata(wheel: Path, names: list[str]) -> email.message.Message:
    (path,) = [n for n in names if n.endswith(".dist-info/METADATA")]
    with zipfile.ZipFile(wheel) as archive:
        return email.parser.Parser().parsestr(archive.read(path).decode())


def test_wheel_holds_effopt_alone(wheel: Path, names: list[str]) -> None:
    tops = {name.split("/")[0] for name in names}
    (dist_info,) = [top for top in tops if top.endswith(".dist-info")]
    assert tops == {"effopt", dist_info}, sorted(tops)
    assert not [name for name in names if name.split("/")[0] in NOT_SHIPPED]
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(f"{dist_info}/top_level.txt").decode().split() == ["effopt"]
        big = {info.filename: info.file_size for info in archive.infolist() if info.file_size > MAX_FILE_BYTES}
    assert not big, f"files over 1 MB in the wheel: {big}"
    # the package as it is in the repository: every module in it, and nothing stale from an old build/
    shipped = {name for name in names if name.startswith("effopt/")}
    modules = [path for path in (ROOT / "effopt").rglob("*.py") if "__pycache__" not in path.parts]
    source = {path.relative_to(ROOT).as_posix() for path in modules}
    assert source <= shipped, f"modules missing from the wheel: {sorted(source - shipped)}"
    assert all((ROOT / name).is_file() for name in shipped), sorted(n for n in shipped if not (ROOT / n).is_file())


def test_wheel_is_typed(names: list[str]) -> None:
    assert "effopt/py.typed" in names


def test_metadata(wheel: Path, names: list[str]) -> None:
    meta = _metadata(wheel, names)
    assert meta["Name"] == "effopt"
    assert meta["Version"] == effopt.__version__
    assert wheel.name.startswith(f"effopt-{effopt.__version__}-")
    assert meta["License-Expression"] == "Apache-2.0"
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)
    # the one requirement outside the extras
    assert [req for req in meta.get_all("Requires-Dist") if "extra ==" not in req] == ["torch>=2.11"]
    assert "Typing :: Typed" in meta.get_all("Classifier")


def test_twine_check(wheel: Path) -> None:
    done = _run(sys.executable, "-m", "twine", "check", "--strict", str(wheel))
    assert "PASSED" in done.stdout, done.stdout


def test_sdist_holds_effopt_alone(tmp_path: Path) -> None:
    # MANIFEST.in prunes the repository's other folders, so that an uploaded sdist is not 21 MB of shipped instances
    build_sdist = f"from setuptools import build_meta; print(build_meta.build_sdist({str(tmp_path)!r}))"
    name = _run(sys.executable, "-c", build_sdist).stdout.split()[-1]
    with tarfile.open(tmp_path / name) as archive:
        members = {member.name.split("/", 1)[1]: member.size for member in archive.getmembers() if "/" in member.name}
    tops = {path.split("/")[0] for path in members}
    top_files = {"PKG-INFO", "setup.cfg", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "CHANGELOG.md"}
    assert tops <= {"effopt", "effopt.egg-info", *top_files}, sorted(tops)
    assert {"effopt/__init__.py", "effopt/py.typed", *top_files} <= set(members)
    assert max(members.values()) <= MAX_FILE_BYTES


def test_imports_from_the_wheel_beside_torch_alone(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    _run(*PIP, "install", "--no-deps", "--no-index", "--target", str(target), str(wheel))
    assert {path.name.split("-")[0] for path in target.iterdir()} == {"effopt"}, sorted(target.iterdir())
    spec = importlib.util.find_spec("torch")
    assert spec is not None and spec.origin is not None
    torch_site = str(Path(spec.origin).parents[1])
    # -I: no cwd, no PYTHONPATH or user site; -S: no site-packages and no .pth files, so the editable install's finder
    # (which maps effopt to this repository) is not loaded. sys.path: the wheel, the standard library, torch.
    code = textwrap.dedent(f"""
        import sys
        from pathlib import Path
        root, target = Path({str(ROOT)!r}), Path({str(target)!r})
        assert not any(Path(p or ".").resolve() == root for p in sys.path), sys.path
        sys.path[:] = [str(target), *sys.path, {torch_site!r}]

        import torch

        import effopt

        assert Path(effopt.__file__).resolve().is_relative_to(target.resolve()), effopt.__file__
        torch.manual_seed(0)
        x = torch.randn(64, 4)
        y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
        model = torch.nn.Linear(4, 1)

        def loss():
            return torch.nn.functional.mse_loss(model(x).squeeze(-1), y)

        opt = effopt.ExtrapolatingOptimizer(torch.optim.SGD(model.parameters(), lr=0.05),
                                            probe=lambda: loss().item(), model=model)
        before = loss().item()
        for _ in range(20):
            opt.zero_grad()
            loss().backward()
            opt.step()
        assert opt.events, "no extrapolation event in 20 steps"
        assert loss().item() < before, (before, loss().item())
        assert "transformers" not in sys.modules
        print("ok", effopt.__version__, len(opt.events))
    """)
    done = _run(sys.executable, "-I", "-S", "-c", code, cwd=tmp_path)
    assert done.stdout.split()[:2] == ["ok", effopt.__version__], done.stdout
