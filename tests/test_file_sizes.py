"""Every Python file under effopt/, reference/, benchmarks/ and tests/ can be read in one sitting: at most MAX_LINES
lines, or listed in LONGER with why it must be longer."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("effopt", "reference", "benchmarks", "tests")
MAX_LINES = 450
#: {path from the repository's root: why it must be longer than MAX_LINES}; none today
LONGER: dict[str, str] = {}


def lengths() -> dict[str, int]:
    return {
        path.relative_to(ROOT).as_posix(): len(path.read_text().splitlines())
        for folder in FOLDERS
        for path in sorted((ROOT / folder).rglob("*.py"))
    }


def test_no_file_is_longer_than_the_limit():
    long = {path: n for path, n in lengths().items() if n > MAX_LINES and path not in LONGER}
    assert not long, f"over {MAX_LINES} lines (split by the job a reader looks for, or say why in LONGER): {long}"


def test_every_exception_is_still_needed():
    found = lengths()
    stale = [path for path in LONGER if found.get(path, 0) <= MAX_LINES]
    assert not stale, f"LONGER lists files that are no longer over {MAX_LINES} lines: {stale}"
