"""Bounded resources on hostile input: what a file claims is checked against what it holds, and every
refusal is one line naming the file (no traceback, no "internal error", nothing staged or written)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fuzz.hostile import (
    CORPUS,
    metadata,
    safetensors_claiming,
    safetensors_skeleton,
    torch_build_on_placeholder,
    torch_deflate_bomb,
    zstd_bomb_object,
    zstd_claim,
)

from theta.testing import GitRepo

MiB = 1 << 20


def read_in_a_subprocess(data: bytes, name: str, tmp_path: Path) -> tuple[str, int]:
    """(the error the format raised, how many bytes the reading process grew): read as the clean filter does."""
    file = tmp_path / name
    file.write_bytes(data)
    script = textwrap.dedent(
        f"""
        import resource, sys
        from theta.checkpoints import choose_format
        from theta.errors import ThetaError
        from theta.formats import open_file_source
        from theta.plugins import default_manager
        registry = default_manager().registry
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            with open_file_source({str(file)!r}, {name!r}) as source:
                fmt = choose_format(registry, {name!r}, source.head, None)
                for _ in fmt.read(source).parameters:
                    pass
            message = "accepted"
        except ThetaError as exc:
            message = type(exc).__name__ + ": " + str(exc)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(message)
        print(grown * 1024)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    message, grown = proc.stdout.strip().rsplit("\n", 1)
    return message, int(grown)


def assert_add_refused(repo: GitRepo, path: str, data: bytes, *expected: str) -> str:
    repo.write(path, data)
    result = repo.git("add", path, check=False)
    assert result.returncode != 0
    errors = [line for line in result.stderr.splitlines() if line.startswith("theta: error:")]
    assert errors and path in errors[0], result.stderr
    for text in expected:
        assert text in errors[0], (text, result.stderr)
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr
    assert repo.git("diff", "--cached", "--name-only").stdout == ""
    return errors[0]


def test_safetensors_claiming_4_gib_allocates_what_it_holds(tmp_path: Path) -> None:
    message, grown = read_in_a_subprocess(safetensors_claiming(), "bomb.safetensors", tmp_path)
    assert message.startswith("FormatError: bomb.safetensors: file is truncated"), message
    assert grown < 64 * MiB, f"reading a 104-byte file grew the process by {grown // MiB} MiB"


def test_safetensors_header_claiming_100_mib_is_not_allocated(tmp_path: Path) -> None:
    data = (CORPUS / "safetensors-header-claims-100MiB.safetensors").read_bytes()
    message, grown = read_in_a_subprocess(data, "header.safetensors", tmp_path)
    assert message.startswith("FormatError: header.safetensors: file is truncated"), message
    assert grown < 48 * MiB


def test_safetensors_deep_header_is_a_format_error(tmp_path: Path) -> None:
    data = (CORPUS / "safetensors-deep-header.safetensors").read_bytes()
    message, _ = read_in_a_subprocess(data, "deep.safetensors", tmp_path)
    assert message.startswith("FormatError: deep.safetensors:") and "nested" in message, message


def test_pt_whose_pickle_inflates_far_is_refused_without_inflating_it(tmp_path: Path) -> None:
    message, grown = read_in_a_subprocess(torch_deflate_bomb(256 * MiB), "bomb.pt", tmp_path)
    assert message.startswith("FormatError: bomb.pt:") and "data.pkl" in message, message
    assert grown < 64 * MiB, f"grew by {grown // MiB} MiB"


def test_pickle_build_on_a_placeholder_is_a_format_error(tmp_path: Path) -> None:
    message, _ = read_in_a_subprocess(torch_build_on_placeholder(), "build.pt", tmp_path)
    assert message.startswith("FormatError: build.pt: data.pkl") and "BUILD" in message, message


def test_git_add_of_hostile_checkpoints_is_one_line(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    repo.theta("track", "*.pt")
    repo.commit_all("track")
    assert_add_refused(repo, "a.safetensors", safetensors_claiming(), "truncated")
    assert_add_refused(repo, "b.pt", torch_deflate_bomb(), "data.pkl")
    assert_add_refused(repo, "c.pt", torch_build_on_placeholder(), "BUILD")


@pytest.mark.parametrize(
    ("corpus_file", "expected"),
    [
        ("metadata-negative-dimension.json", "negative dimension"),
        ("metadata-absurd-shape.json", "elements, more than"),
        ("metadata-too-many-dimensions.json", "dimensions, more than"),
        ("metadata-deep-nesting.json", "nested more than"),
        ("metadata-deep-params.json", "nested more than"),
    ],
)
def test_hostile_metadata_is_refused_everywhere(repo: GitRepo, corpus_file: str, expected: str) -> None:
    data = (CORPUS / corpus_file).read_bytes()
    repo.theta("track", "*.safetensors")
    repo.commit_all("track")
    assert_add_refused(repo, "m.safetensors", data, expected)
    for args in (
        ["diff-textconv", "m.safetensors"],
        ["merge", "m.safetensors", "m.safetensors", "m.safetensors", "m.safetensors"],
    ):
        result = repo.theta(*args, check=False)
        said = result.stdout + result.stderr  # textconv shows its refusal as the text git diffs
        assert "Traceback" not in said and "RecursionError" not in said and "internal error" not in said, said
        assert "m.safetensors" in said and expected in said, said
        assert args[0] != "merge" or result.returncode != 0


def committed_metadata(repo: GitRepo, doc: dict[str, object], objects: list[bytes], elements: int) -> None:
    """Commit a crafted metadata file as the cleaned form of `m.safetensors`, with its objects stored."""
    skeleton = safetensors_skeleton("w", elements)
    doc["skeleton"] = {"oid": hashlib.sha256(skeleton).hexdigest(), "size": len(skeleton)}
    lfs = repo.path / ".git" / "lfs" / "objects"
    for data in [*objects, skeleton]:
        oid = hashlib.sha256(data).hexdigest()
        (lfs / oid[:2] / oid[2:4]).mkdir(parents=True, exist_ok=True)
        (lfs / oid[:2] / oid[2:4] / oid).write_bytes(data)
    repo.theta("track", "*.safetensors")
    repo.write("m.safetensors", json.dumps(doc).encode())
    repo.commit_all("crafted")
    (repo.path / "m.safetensors").unlink()


def assert_checkout_refused(repo: GitRepo, *expected: str) -> None:
    result = repo.git("checkout", "--", "m.safetensors", check=False)
    assert result.returncode != 0
    assert "MemoryError" not in result.stderr and "internal error" not in result.stderr, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("theta: error:"))
    assert "m.safetensors" in line and "'w'" in line, line
    for text in expected:
        assert text in line, (text, line)


def test_zstd_object_claiming_a_tib_is_refused_before_allocating(repo: GitRepo) -> None:
    small = bytes(range(256)) * 125  # 32 000 bytes, whatever they hold
    oid = hashlib.sha256(small).hexdigest()
    committed_metadata(repo, metadata({"w": zstd_claim(oid, len(small), 1 << 38)}), [small], 1 << 38)
    assert_checkout_refused(repo, "claims to hold", str(4 << 38))


def test_zstd_object_claiming_more_than_it_decompresses_to_is_refused(repo: GitRepo) -> None:
    bomb = zstd_bomb_object(64 * MiB)  # really 64 MiB of zeros, claimed as 4 GiB of float32
    oid = hashlib.sha256(bomb).hexdigest()
    committed_metadata(repo, metadata({"w": zstd_claim(oid, len(bomb), 1 << 30)}), [bomb], 1 << 30)
    assert_checkout_refused(repo, "zstd object")
