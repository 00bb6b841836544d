"""`git theta install`: the filter, diff and merge drivers in git's config, and the hooks."""

from __future__ import annotations

from theta.app.hooks import install_hooks, theta_command
from theta.git.repo import Repo, run_git


def driver_config() -> dict[str, str]:
    command = theta_command()
    return {
        "filter.theta.process": f"{command} filter-process",
        "filter.theta.required": "true",
        "diff.theta.textconv": f"{command} diff-textconv",
        "merge.theta.name": "Theta: merge model checkpoints parameter by parameter",
        "merge.theta.driver": f"{command} merge %O %A %B %P",
    }


def install(scope: str, repo: Repo | None) -> list[str]:
    """Write the configuration at `scope` (global, local, system); returns what was done."""
    done = []
    for key, value in driver_config().items():
        run_git("config", f"--{scope}", key, value, cwd=repo.cwd if repo else None)
    done.append(f"git config --{scope}: filter, diff and merge drivers `theta`")
    if repo is not None:
        done.extend(install_hooks(repo))
    return done


def uninstall(scope: str, repo: Repo | None) -> None:
    for section in ("filter.theta", "diff.theta", "merge.theta"):
        run_git("config", f"--{scope}", "--remove-section", section, cwd=repo.cwd if repo else None, check=False)
