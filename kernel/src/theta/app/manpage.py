"""The manual page git-theta(1), written from the command line's own parser.

`git theta --help` is turned by git into `git help theta`, which runs `man git-theta`: the
kernel's wheel installs this page as `share/man/man1/git-theta.1`, where man finds it for
the environment whose `bin/` holds `git-theta`. `scripts/manpage.py` rewrites
`kernel/man/git-theta.1`; a test checks it is current.
"""

from __future__ import annotations

import argparse

from theta import __version__
from theta.app.cli import DESCRIPTION, ENVIRONMENT, EXIT_STATUS, Quiet, build_parser, is_plumbing, subcommands


def escape(text: str) -> str:
    """Text as roff prints it: backslashes and hyphens kept, no line starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return "\n".join("\\&" + line if line.startswith((".", "'")) else line for line in text.split("\n"))


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines = []
    for action in parser._actions:
        if action.help == argparse.SUPPRESS or isinstance(action, (argparse._HelpAction, Quiet)):
            continue
        if action.option_strings:
            metavar = "" if action.nargs == 0 else f" {action.metavar or action.dest.upper()}"
            name = ", ".join(f"{o}{metavar}" for o in action.option_strings)
        else:
            name = str(action.metavar or action.dest)
        lines += [".TP", f"\\fB{escape(name)}\\fR", escape(action.help or "")]
    return lines


def _command(name: str, parser: argparse.ArgumentParser) -> list[str]:
    usage = parser.format_usage().removeprefix("usage: ").strip()
    lines = [f'.SS "{escape(f"git theta {name}")}"', ".nf", escape(" ".join(usage.split())), ".fi", ".PP"]
    lines.append(escape(parser.description or ""))
    lines += [".RS", *_options(parser), ".RE"]
    if parser.epilog:
        body = parser.epilog.removeprefix("examples:\n")
        lines += [".PP", "Examples:", ".RS", ".nf", *[escape(line.strip()) for line in body.splitlines()], ".fi", ".RE"]
    return lines


def render(parser: argparse.ArgumentParser | None = None) -> str:
    parser = parser or build_parser()
    commands = subcommands(parser)
    lines = [
        f'.TH GIT\\-THETA 1 "" "theta {__version__}" "Theta Manual"',
        ".SH NAME",
        "git\\-theta \\- version control for machine\\-learning models, inside Git",
        ".SH SYNOPSIS",
        ".nf",
        "\\fBgit theta\\fR [\\-\\-version] [\\-q] \\fICOMMAND\\fR [\\fIARGS\\fR]",
        "\\fBgit theta help\\fR [\\fICOMMAND\\fR]",
        "\\fBgit theta\\fR \\fICOMMAND\\fR \\-h",
        ".fi",
        ".SH DESCRIPTION",
        escape(DESCRIPTION),
        ".PP",
        escape(
            "Theta is a Git extension: `git theta track PATTERN` makes git's clean/smudge filter split matching"
            " checkpoints into tensors stored as Git LFS objects, and commit a small metadata file instead;"
            " only the tensors that changed are stored again, and every checkout is bit-exact. `git diff`,"
            " `git merge` and `git log -p` work per parameter."
        ),
        ".PP",
        escape("Every command takes -h, which prints its options and examples, and -q, which shows no progress."),
        ".SH COMMANDS",
    ]
    for name, sub in commands.items():
        if not is_plumbing(sub):
            lines += _command(name, sub)
    lines += [".SH PLUMBING COMMANDS", escape("Called by git and by Theta's hooks, not by people."), ""]
    for name, sub in commands.items():
        if is_plumbing(sub):
            lines += _command(name, sub)
    lines.append(".SH ENVIRONMENT")
    for name, text in ENVIRONMENT:
        lines += [".TP", f"\\fB{escape(name)}\\fR", escape(text)]
    lines.append(".SH EXIT STATUS")
    for code, text in EXIT_STATUS:
        lines += [".TP", f"\\fB{code}\\fR", escape(text)]
    lines += [".SH SEE ALSO", "\\fBgit\\-lfs\\fR(1), \\fBgitattributes\\fR(5)"]
    return "\n".join(line for line in lines if line != "") + "\n"
