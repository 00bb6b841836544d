"""The repository hooks Theta needs, installed beside whatever is already there.

Git runs one script per hook, and git-lfs writes its own (pre-push, post-checkout,
post-commit, post-merge) only where none exists: once Theta's hooks are in place, git-lfs
installs none. So each of Theta's hooks also runs git-lfs's logic (`git lfs <hook> "$@"`,
with the same standard input), whatever was installed first: plain Git LFS files in the same
repository are pushed, and lockable files are handled, as if git-lfs's hooks were there.

An existing hook that is not ours is kept: it is renamed `<hook>.theta-chained` and our hook
runs it after our own steps, with the same arguments and standard input. When that hook
already calls git-lfs (it is git-lfs's own, or a user's that includes it), ours leaves the
git-lfs step to it, so git-lfs runs once.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

from theta.errors import ThetaError
from theta.git.repo import SQUASH_REQUESTS, THETA_DIR, Repo

MARKER = "# theta: managed hook"
HOOK_VERSION = 3  # 2: every hook runs git-lfs's logic too; 3: post-commit starts Python only when needed
CHAINED_SUFFIX = ".theta-chained"
HOOKS = ("pre-push", "post-checkout", "post-commit", "post-merge")
HOOKS_WITH_INPUT = ("pre-push",)
# Theta's own step in each hook (the hooks without one exist to run git-lfs's logic).
THETA_STEPS = {"pre-push": 'pre-push "$@"', "post-commit": "post-commit"}
# A shell test before a step, where the step has work only sometimes (a process start costs 0.3 s).
THETA_STEP_WHEN = {"post-commit": f'[ -e "$(git rev-parse --git-common-dir)/{THETA_DIR}/{SQUASH_REQUESTS}" ]'}
RAN_ENV = "THETA_HOOK_RAN"  # set while a shared hook runs again after Theta's step
LFS_SETUP_ADVICE = (
    "these hooks also run Git LFS's (`git lfs pre-push`, post-checkout, post-commit, post-merge), so in this"
    " repository `git lfs install` stops at `Hook already exists`: run `git lfs install --skip-repo` instead"
    " (it sets up Git LFS's filter and leaves the hooks as they are)"
)


def theta_command() -> str:
    """How git should call us: `git-theta` when it is on PATH, else this environment's script."""
    found = shutil.which("git-theta")
    if found:
        return "git-theta"
    candidate = Path(sys.executable).parent / "git-theta"
    return str(candidate) if candidate.exists() else "git-theta"


def version_line() -> str:
    return f"{MARKER} (version {HOOK_VERSION})"


def hook_script(name: str) -> str:
    command = theta_command()
    with_input = name in HOOKS_WITH_INPUT
    feed = "feed | " if with_input else ""
    lines = [
        "#!/bin/sh",
        version_line(),
        f"command -v {command} >/dev/null 2>&1 || {{",
        f'  echo >&2 "theta: {command} was not found on PATH; install theta-kernel, or delete $0"',
        "  exit 2",
        "}",
        "command -v git-lfs >/dev/null 2>&1 || {",
        '  echo >&2 "theta: git-lfs was not found on PATH; Theta and Git LFS need it (apt-get install git-lfs)"',
        "  exit 2",
        "}",
        f'chained="$0{CHAINED_SUFFIX}"',
    ]
    if with_input:
        lines += ["input=$(cat)", 'feed() { [ -z "$input" ] || printf \'%s\\n\' "$input"; }']
    if name in THETA_STEPS:
        step = f"{feed}{command} {THETA_STEPS[name]} || exit $?"
        lines += [f"if {THETA_STEP_WHEN[name]}; then", f"  {step}", "fi"] if name in THETA_STEP_WHEN else [step]
    lines += [
        f'if ! {{ [ -f "$chained" ] && grep -Eq \'git[ -]lfs {name}\' "$chained"; }}; then',
        f'  {feed}git lfs {name} "$@" || exit $?',
        "fi",
        'if [ -x "$chained" ]; then',
        f'  {feed}"$chained" "$@" || exit $?',
        "fi",
    ]
    return "\n".join(lines) + "\n"


def is_ours(text: str) -> bool:
    return MARKER in text


def install_hook(hooks_dir: Path, name: str) -> bool:
    """Install one hook; returns True when something was written."""
    hooks_dir.mkdir(parents=True, exist_ok=True)
    path = hooks_dir / name
    script = hook_script(name)
    if path.exists():
        current = path.read_text(errors="replace")
        if current == script:
            return False
        if not is_ours(current):
            chained = path.with_name(name + CHAINED_SUFFIX)
            if not chained.exists():
                path.rename(chained)
            elif not is_plain_lfs_hook(current, name):
                raise ThetaError(
                    f"{path} is not Theta's hook and {chained.name} is kept there already: merge the two into"
                    f" {chained} and run `git theta install --local`"
                )
    path.write_text(script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return True


def is_plain_lfs_hook(text: str, name: str) -> bool:
    """True for git-lfs's own hook: our hook runs the same logic, so it need not be kept."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return any(line == f'git lfs {name} "$@"' for line in lines) and all(
        line.startswith(("#", "command -v git-lfs")) or line == f'git lfs {name} "$@"' for line in lines
    )


def shared_hooks_dir(repo: Repo) -> Path | None:
    """The hooks directory `core.hooksPath` names, which Theta never writes; None when unset."""
    return repo.hooks_dir if repo.config("core.hooksPath") else None


def shared_hook_line(name: str) -> str:
    """The line that makes a shared hook run Theta's step first, keeping its standard input for the rest."""
    return f'[ -n "${RAN_ENV}" ] || ! command -v git-theta >/dev/null 2>&1 || exec git-theta run-hook {name} "$0" "$@"'


def shared_hooks_advice(hooks_dir: Path) -> list[str]:
    """What to add to shared hooks that do not call Theta yet (empty when they all do)."""
    advice = []
    for name in THETA_STEPS:
        path = hooks_dir / name
        text = path.read_text(errors="replace") if path.is_file() else ""
        if f"run-hook {name}" in text:
            continue
        advice.append(
            f"core.hooksPath is {hooks_dir}: Theta writes no hooks there; add this line right after the first"
            f" line of {path} (if it does not exist, create it with `#!/bin/sh` and this line and make it"
            f" executable): `{shared_hook_line(name)}`"
        )
    return advice


def install_hooks(repo: Repo) -> list[str]:
    """`git theta install`: install every hook; returns what was done (or what the user must do)."""
    shared = shared_hooks_dir(repo)
    if shared is not None:
        return shared_hooks_advice(shared)
    done = [f"hook {repo.hooks_dir / name}" for name in HOOKS if install_hook(repo.hooks_dir, name)]
    return [*done, LFS_SETUP_ADVICE]


def ensure_repo_hooks(repo: Repo) -> None:
    """Install missing hooks and upgrade ours from earlier versions; leaves current ones untouched.

    With `core.hooksPath` set, writes nothing and says on stderr what to add to the shared hooks.
    """
    shared = shared_hooks_dir(repo)
    if shared is not None:
        for line in shared_hooks_advice(shared):
            print(f"theta: warning: {line}", file=sys.stderr)
        return
    for name in HOOKS:
        path = repo.hooks_dir / name
        if not path.exists():
            install_hook(repo.hooks_dir, name)
            continue
        text = path.read_text(errors="replace")
        if not is_ours(text) or version_line() not in text:
            install_hook(repo.hooks_dir, name)


def run_hook(name: str, script: str, args: list[str]) -> int:
    """`git theta run-hook NAME SCRIPT ARGS...`: Theta's step of a shared hook, then the hook itself.

    The hook's standard input is read once, given to Theta's step, and given again to the hook
    script, which runs with RAN_ENV set so that the line that called us lets it continue.
    """
    data = sys.stdin.buffer.read() if name in HOOKS_WITH_INPUT else b""
    status = run_theta_step(name, args, data)
    if status != 0:
        return status
    env = {**os.environ, RAN_ENV: "1"}
    return subprocess.run([script, *args], input=data, env=env).returncode


def run_theta_step(name: str, args: list[str], data: bytes) -> int:
    if name == "pre-push":
        from theta.app.prepush import pre_push

        return pre_push(args[0] if args else "origin", data.decode(errors="surrogateescape").splitlines())
    if name == "post-commit":
        from theta.next_commit import clear_squash_requests

        clear_squash_requests(Repo())
    return 0
