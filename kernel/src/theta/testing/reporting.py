"""What the contracts report beside pass or fail: the samples an update type declined."""

from __future__ import annotations

from typing import Any

DECLINED = "theta-declined"


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "http: needs a local Git LFS server (giftless)")
    config.addinivalue_line("markers", "slow: exercises large files or fresh virtual environments")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line per contract test that saw declined samples; with -v, the samples too."""
    verbose = terminalreporter.config.get_verbosity() > 0
    found = [
        (report.nodeid, value)
        for outcome in ("passed", "failed")
        for report in terminalreporter.stats.get(outcome, [])
        if getattr(report, "when", "call") == "call"
        for key, value in getattr(report, "user_properties", ())
        if key == DECLINED
    ]
    if not found:
        return
    terminalreporter.write_sep("-", "samples declined by update types" + ("" if verbose else " (-v lists them)"))
    for nodeid, value in found:
        terminalreporter.write_line(f"{nodeid}: {value if verbose else value.split(':', 1)[0]}")
