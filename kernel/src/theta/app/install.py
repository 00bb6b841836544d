"""`git theta install`: the filter, diff and merge drivers in git's config, and the hooks."""

from __future__ import annotations

from theta.app.hooks import install_hooks, theta_command
from theta.git.repo import Repo, run_git


def driver_config(skip_smudge: bool = False) -> dict[str, str]:
    """`skip_smudge`: checkouts leave metadata files in place (as with GIT_LFS_SKIP_SMUDGE=1)."""
    command = theta_command()
    return {
        "filter.theta.process": f"{command} filter-process" + (" --skip-smudge" if skip_smudge else ""),
        "filter.theta.required": "true",
        # git diff: both sides, read as metadata by blob id; git log -p and git show: one side as text
        "diff.theta.command": f"{command} diff-driver --",
        "diff.theta.textconv": f"{command} diff-textconv --",
        "merge.theta.name": "Theta: merge model checkpoints parameter by parameter",
        "merge.theta.driver": f"{command} merge %O %A %B %P",
    }


def install(scope: str, repo: Repo | None, skip_smudge: bool = False) -> list[str]:
    """Write the configuration at `scope` (global, local, system); returns what was done."""
    done = []
    for key, value in driver_config(skip_smudge).items():
        run_git("config", f"--{scope}", key, value, cwd=repo.cwd if repo else None)
    done.append(f"git config --{scope}: filter, diff and merge drivers `theta`")
    if repo is not None:
        done.extend(install_hooks(repo))
    return done


def uninstall(scope: str, repo: Repo | None) -> list[str]:
    """Remove the configuration at `scope` and, for `local`, Theta's hooks; returns what was done."""
    cwd = repo.cwd if repo else None
    sections = ("filter.theta", "diff.theta", "merge.theta")
    found = [s for s in sections if run_git("config", f"--{scope}", "--get-regexp", f"^{s}\\.", cwd=cwd, check=False)]
    for section in found:
        run_git("config", f"--{scope}", "--remove-section", section, cwd=cwd, check=False)
    done = [f"git config --{scope}: " + (f"removed {', '.join(found)}" if found else "nothing of Theta's to remove")]
    if scope == "local" and repo is not None:
        done.extend(_remove_hooks(repo))
    return done


def _remove_hooks(repo: Repo) -> list[str]:
    """Delete Theta's hooks, putting back the hooks they chained; say what to edit in shared hooks."""
    from theta.app.hooks import CHAINED_SUFFIX, HOOKS, THETA_STEPS, is_ours, shared_hooks_dir

    shared = shared_hooks_dir(repo)
    if shared is not None:
        calling = [shared / n for n in THETA_STEPS if (shared / n).is_file() and "run-hook" in (shared / n).read_text()]
        return [f"core.hooksPath is {shared}: remove the `git-theta run-hook` line from {p}" for p in calling]
    done = []
    for name in HOOKS:
        path, chained = repo.hooks_dir / name, repo.hooks_dir / (name + CHAINED_SUFFIX)
        if not path.is_file() or not is_ours(path.read_text(errors="replace")):
            continue
        path.unlink()
        if chained.exists():
            chained.rename(path)
            done.append(f"removed Theta's hook {path}; the hook it ran after its own steps is back in its place")
        else:
            done.append(f"removed Theta's hook {path}")
    if done and repo.config("filter.lfs.process"):
        done.append("Theta's hooks also ran Git LFS's: if this repository uses Git LFS, run `git lfs install --local`")
    return done
