"""The merge driver as git calls it (`git-theta merge %O %A %B %P`): git's exit codes, and damaged
input as one line, never a traceback, never something that looks like a conflict."""

from __future__ import annotations

from pathlib import Path

import pytest
from merge_support import MODEL, branches, make_model, merge, save, tuned

from theta.testing import GitRepo

FAILED = 129  # above 128: git 2.42 and later fail the merge instead of recording a conflict
NESTED = (
    b'{"theta": "theta.metadata/1", "format": "safetensors", "parameters": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
)


def versions(repo: GitRepo, tmp_path: Path) -> tuple[Path, Path, Path]:
    base = make_model()
    branches(repo, save(base), save(tuned(base, ["embed.weight"], 1)), save(tuned(base, ["embed.weight"], 2)))
    files = []
    for label, rev in (("O", "main~1"), ("A", "main"), ("B", "theirs")):
        path = tmp_path / f".merge_file_{label}"
        path.write_bytes(repo.blob(f"{rev}:{MODEL}"))
        files.append(path)
    return files[0], files[1], files[2]


def driver(repo: GitRepo, o: Path, a: Path, b: Path):  # type: ignore[no-untyped-def]
    return repo.theta("merge", str(o), str(a), str(b), MODEL, check=False)


def assert_one_line(stderr: str) -> None:
    assert "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr


def test_conflict_exit_code_and_a_valid_result(repo: GitRepo, tmp_path: Path) -> None:
    o, a, b = versions(repo, tmp_path)
    before = a.read_bytes()
    result = driver(repo, o, a, b)
    assert result.returncode == 1
    assert a.read_bytes() == before  # ours for the conflicting parameter, everything else merged (nothing)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (NESTED, "nested more than"),
        (b'{"theta": "theta.metadata/1", "format": "safetensors", "parameters": {"w": {"dtype": 1}}}', "parameters"),
        (b'{"theta": "theta.metadata/1", "format": "x", "parameters": {}, "colour": 1}', "unknown field(s): colour"),
        (b'{"theta": "theta.metadata/9", "format": "x"}', "metadata version"),
    ],
    ids=["deeply-nested", "mistyped", "unknown-field", "unknown-version"],
)
def test_damaged_metadata_fails_in_one_line_and_is_not_a_conflict(
    repo: GitRepo, tmp_path: Path, damage: bytes, message: str
) -> None:
    o, a, b = versions(repo, tmp_path)
    before = a.read_bytes()
    b.write_bytes(damage)
    result = driver(repo, o, a, b)
    assert result.returncode == FAILED
    assert_one_line(result.stderr)
    assert message in result.stderr and f"{MODEL} (theirs)" in result.stderr
    assert a.read_bytes() == before


def test_a_file_that_is_not_metadata_is_a_conflict_for_a_person(repo: GitRepo, tmp_path: Path) -> None:
    o, a, b = versions(repo, tmp_path)
    b.write_bytes(b"[" * 50_000)
    result = driver(repo, o, a, b)
    assert result.returncode == 1
    assert_one_line(result.stderr)
    assert "not a Theta metadata file" in result.stderr


def test_a_crash_does_not_look_like_a_conflict(repo: GitRepo, tmp_path: Path) -> None:
    o, a, b = versions(repo, tmp_path)
    o.unlink()
    result = driver(repo, o, a, b)
    assert result.returncode == FAILED
    assert_one_line(result.stderr)
    assert "internal error" in result.stderr and "FileNotFoundError" in result.stderr


def test_a_deeply_nested_blob_in_a_real_merge_is_one_line(repo: GitRepo) -> None:
    base = make_model()
    branches(repo, save(base), save(tuned(base, ["embed.weight"], 1)), save(tuned(base, ["head.bias"], 2)))
    repo.git("checkout", "-q", "theirs")
    blob = repo.git("hash-object", "-w", "--no-filters", "--stdin", input=NESTED).stdout.strip()
    repo.git("update-index", "--cacheinfo", f"100644,{blob},{MODEL}")
    repo.git("commit", "-q", "-m", "damaged")
    repo.git("checkout", "-q", "-f", "main")
    result = merge(repo)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("theta: merge:")]
    assert len(lines) == 1 and "nested more than" in lines[0], result.stderr
