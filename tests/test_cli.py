"""`git theta` behaves like git's own tools: help, typos, plain errors, closed pipes, JSON, exit codes."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sample_models import checkpoint_bytes, make_model

from theta.app.cli import EXIT_STATUS, build_parser, is_plumbing, subcommands
from theta.testing import GitRepo, git_theta_command

ROOT = Path(__file__).resolve().parents[1]
MAN_PAGE = ROOT / "kernel" / "man" / "git-theta.1"


def run(args: list[str], cwd: Path, env: dict[str, str], **kwargs) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, **kwargs)


@pytest.fixture
def man_env(tmp_path: Path, git_env: dict[str, str]) -> dict[str, str]:
    """The test HOME's environment with the manual page where man looks (as the wheel installs it)."""
    prefix = tmp_path / "prefix"
    (prefix / "share" / "man" / "man1").mkdir(parents=True)
    (prefix / "share" / "man" / "man1" / "git-theta.1").write_bytes(MAN_PAGE.read_bytes())
    (prefix / "bin").mkdir()
    (prefix / "bin" / "git-theta").symlink_to(git_theta_command())
    return {**git_env, "PATH": f"{prefix / 'bin'}:{git_env['PATH']}", "MANPAGER": "cat", "PAGER": "cat"}


def test_manual_page_is_current() -> None:
    proc = subprocess.run([sys.executable, "scripts/manpage.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_kernel_wheel_installs_the_manual_page() -> None:
    pyproject = (ROOT / "kernel" / "pyproject.toml").read_text()
    assert '"share/man/man1" = ["man/git-theta.1"]' in pyproject


@pytest.mark.parametrize("command", [["git", "theta", "--help"], ["git", "help", "theta"]])
def test_git_shows_the_manual(command: list[str], man_env: dict[str, str], tmp_path: Path) -> None:
    proc = run(command, tmp_path, man_env)
    assert proc.returncode == 0, proc.stderr
    text = re.sub(r".\x08", "", proc.stdout)  # man's overstrike bold, if any
    assert "GIT-THETA(1)" in text
    assert "git theta track" in text and "EXIT STATUS" in text
    for name in subcommands(build_parser()):
        assert f"git theta {name}" in text, name


def test_help_command_prints_a_commands_options_and_examples(tmp_path: Path, git_env: dict[str, str]) -> None:
    proc = run([git_theta_command(), "help", "track"], tmp_path, git_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: git theta track")
    assert "examples:\n  git theta track" in proc.stdout
    top = run([git_theta_command(), "help"], tmp_path, git_env)
    assert top.returncode == 0 and "usage: git theta" in top.stdout
    listed = [line.split()[0] for line in top.stdout.splitlines() if line.startswith("    ") and line.split()]
    assert listed.index("track") < listed.index("filter-process"), "plumbing commands are listed last"
    wrong = run([git_theta_command(), "help", "trak"], tmp_path, git_env)
    assert wrong.returncode == 1 and "track" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1


def test_every_command_has_an_example() -> None:
    for name, parser in subcommands(build_parser()).items():
        help_text = parser.format_help()
        assert "examples:\n  " in help_text, f"`git theta {name} -h` shows no example"
        if not is_plumbing(parser):
            assert f"git theta {name}" in help_text.split("examples:", 1)[1], name


def test_a_typo_gets_did_you_mean(tmp_path: Path, git_env: dict[str, str]) -> None:
    proc = run(["git", "theta", "trak", "*.pt"], tmp_path, git_env)
    assert proc.returncode == 1
    assert proc.stderr.startswith("git theta: 'trak' is not a theta command. See 'git theta --help'.")
    assert "The most similar command is\n\ttrack\n" in proc.stderr
    assert "Traceback" not in proc.stderr
    nothing_close = run(["git", "theta", "zzzzzz"], tmp_path, git_env)
    assert nothing_close.returncode == 1 and "most similar" not in nothing_close.stderr


def test_usage_errors_exit_2(tmp_path: Path, git_env: dict[str, str]) -> None:
    proc = run(["git", "theta", "add"], tmp_path, git_env)
    assert proc.returncode == 2
    assert "the following arguments are required: paths" in proc.stderr
    unknown = run(["git", "theta", "plugins", "--jsn"], tmp_path, git_env)
    assert unknown.returncode == 2 and "unrecognized arguments: --jsn" in unknown.stderr


def test_outside_a_repository_is_one_plain_line(tmp_path: Path, git_env: dict[str, str]) -> None:
    outside = tmp_path / "not-a-repo"
    outside.mkdir()
    env = {**git_env, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    for command in (["ls-files"], ["track", "*.pt"], ["fetch"], ["squash", "model.pt"]):
        proc = run([git_theta_command(), *command], outside, env)
        assert proc.returncode == 1, command
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"theta: error: not in a git repository: run `git theta {command[0]}`")
        assert "fatal" not in proc.stderr
    assert run([git_theta_command(), "plugins"], outside, env).returncode == 0  # needs no repository


def test_git_missing_is_one_plain_line(tmp_path: Path, git_env: dict[str, str]) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    proc = run([git_theta_command(), "ls-files"], tmp_path, {**git_env, "PATH": str(empty)})
    assert proc.returncode == 1
    assert (
        proc.stderr
        == "theta: error: git was not found on PATH: install git (e.g. `apt-get install git`) and try again\n"
    )


THREADS_AFTER_NUMPY = """
import os
from theta.app.cli import main
main(["--quiet", "plugins"])
import numpy  # noqa: F401
print(os.environ["OPENBLAS_NUM_THREADS"], len(os.listdir("/proc/self/task")))
"""


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through /proc")
def test_git_theta_keeps_numpy_to_one_blas_thread(tmp_path: Path, git_env: dict[str, str]) -> None:
    """Its filter and drivers share the cores with git and git-lfs: no spinning BLAS pool beside them."""
    env = {k: v for k, v in git_env.items() if k != "OPENBLAS_NUM_THREADS"}
    proc = run([sys.executable, "-c", THREADS_AFTER_NUMPY], tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-2:] == ["1", "1"]
    chosen = run([sys.executable, "-c", THREADS_AFTER_NUMPY], tmp_path, {**env, "OPENBLAS_NUM_THREADS": "2"})
    assert chosen.stdout.split()[-2] == "2"  # a user's own setting stands


def test_closed_pipe_exits_quietly(repo: GitRepo) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before a byte is written, as `| head -1` leaves it
    try:
        proc = subprocess.run(
            [git_theta_command(), "plugins", "--json"],
            cwd=repo.path,
            env=repo.env,
            stdout=write_end,
            stderr=subprocess.PIPE,
        )
    finally:
        os.close(write_end)
    assert proc.stderr.decode() == ""
    assert proc.returncode == 141
    shell = subprocess.run(
        f"'{git_theta_command()}' plugins --json | head -1",
        shell=True,
        cwd=repo.path,
        env=repo.env,
        capture_output=True,
        text=True,
    )
    assert shell.stdout == "[\n" and shell.stderr == ""


def _packets(*payloads: bytes | None) -> bytes:
    """pkt-lines, None standing for a flush packet."""
    return b"".join(b"0000" if p is None else b"%04x%s" % (len(p) + 4, p) for p in payloads)


def test_filter_process_delivers_every_answer_and_its_summary_before_it_exits(repo: GitRepo) -> None:
    """The filter leaves without the interpreter's teardown: what it wrote must still arrive whole."""
    repo.theta("track", "*.safetensors")
    model = checkpoint_bytes(make_model())
    request = _packets(
        b"git-filter-client\n", b"version=2\n", None, b"capability=clean\n", b"capability=smudge\n", None
    )
    for path, content in (("broken.safetensors", b"not a checkpoint" * 8), ("model.safetensors", model)):
        chunks = [content[i : i + 65516] for i in range(0, len(content), 65516)]
        request += _packets(b"command=clean\n", b"pathname=" + path.encode() + b"\n", None, *chunks, None)
    proc = subprocess.run(
        [git_theta_command(), "filter-process"], cwd=repo.path, env=repo.env, input=request, capture_output=True
    )
    assert proc.returncode == 0
    out = proc.stdout
    assert out.startswith(_packets(b"git-filter-server\n", b"version=2\n", None, b"capability=clean\n"))
    error, _, success = out.partition(_packets(b"status=error\n", None))
    assert error and success.startswith(_packets(b"status=success\n", None))
    assert success.endswith(b"00000000"), "the metadata file's content and its closing status list arrive whole"
    assert b'"theta.metadata/' in success
    stderr = proc.stderr.decode()
    assert "theta: 1 file(s) failed:" in stderr and stderr.rstrip().splitlines()[-1].startswith(
        "theta:   broken.safetensors"
    )


@pytest.mark.parametrize("sent", [b"", b"0014git-filter-client\n"])
def test_filter_process_left_before_the_handshake_ends_says_so_in_one_line(repo: GitRepo, sent: bytes) -> None:
    """Started by hand, or by a git that died: a one-line error, never a traceback."""
    proc = subprocess.run(
        [git_theta_command(), "filter-process"], cwd=repo.path, env=repo.env, input=sent, capture_output=True
    )
    assert proc.returncode == 1
    assert proc.stderr.decode() == (
        "theta: filter-process: the other side closed the pipe before the handshake ended: git runs this command"
        " (filter.theta.process); it is not meant to be run by hand\n"
    )


def test_tables_come_as_json_too(repo: GitRepo) -> None:
    repo.theta("track", "*.safetensors")
    repo.write("model.safetensors", checkpoint_bytes(make_model()))
    repo.commit_all("v1")
    plugins = json.loads(repo.theta("plugins", "--json").stdout)
    assert any(row["registers"].get("formats") == ["safetensors"] for row in plugins)
    assert json.loads(repo.theta("ls-files", "--json").stdout) == [{"path": "model.safetensors"}]
    [row] = json.loads(repo.theta("ls-files", "--long", "--json").stdout)
    [commit] = row["history"]
    assert commit["subject"] == "v1" and commit["objects"] > 0 and commit["added_bytes"] > 0


def test_quiet_is_accepted_before_and_after_the_command(repo: GitRepo) -> None:
    assert repo.theta("-q", "ls-files").returncode == 0
    assert repo.theta("ls-files", "--quiet").returncode == 0


def test_uninstall_local_removes_the_hooks_theta_installed(repo: GitRepo) -> None:
    hooks = repo.path / ".git" / "hooks"
    hooks.mkdir(exist_ok=True)
    mine = "#!/bin/sh\necho my own post-merge\n"
    (hooks / "post-merge").write_text(mine)
    (hooks / "post-merge").chmod(0o755)
    done = repo.theta("install", "--local")
    assert "post-merge" in done.stdout and (hooks / "post-merge.theta-chained").exists()
    proc = repo.theta("uninstall", "--local")
    lines = proc.stdout.splitlines()
    assert lines[0] == "theta: git config --local: removed filter.theta, diff.theta, merge.theta"
    for name in ("pre-push", "post-checkout", "post-commit"):
        assert f"theta: removed Theta's hook {hooks / name}" in lines
        assert not (hooks / name).exists()
    assert (hooks / "post-merge").read_text() == mine, "the hook Theta chained is back in its place"
    assert not (hooks / "post-merge.theta-chained").exists()
    assert repo.git("config", "--local", "--get", "filter.theta.process", check=False).returncode == 1
    again = repo.theta("uninstall", "--local")
    assert again.stdout == "theta: git config --local: nothing of Theta's to remove\n"


def test_exit_codes_are_documented() -> None:
    doc = (ROOT / "docs" / "cli.md").read_text()
    table = doc.split("## Exit status", 1)[1]
    for code, _ in EXIT_STATUS:
        assert f"| {code} |" in table, code


def test_diff_driver_given_a_file_that_is_not_there_says_so_in_one_line(repo: GitRepo) -> None:
    args = ["model.pt", "gone.pt", "1" * 40, "100644", "also-gone.pt", "0" * 40, "100644"]
    proc = subprocess.run(
        [git_theta_command(), "diff-driver", *args], cwd=repo.path, env=repo.env, capture_output=True, text=True
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == (
        "diff --theta a/model.pt b/model.pt\n"
        "  theta: cannot compare: model.pt: cannot read gone.pt: No such file or directory\n"
    )
