"""The merge policy: which strategy, with which options, merges a parameter both branches changed.

The policy is `.theta/merge-policy.toml` in the work tree (spec: specs/merge-policy/v1), read
as git reads `.gitattributes`; `git config theta.mergePolicy PATH` points elsewhere (relative
to the top of the work tree), and `THETA_MERGE_STRATEGY=NAME` replaces it for one command.
A repository without a policy file merges as if its policy were `default = { strategy =
"fail" }` (`DEFAULT_STRATEGY`): a parameter both branches changed is a conflict.

Rules are tried in order and the first whose `params` globs (and `paths` globs, when given)
match wins; globs are fnmatch patterns matched against whole names, case-sensitively. The
file can only name registered strategies: it never imports or runs anything.
"""

from __future__ import annotations

import fnmatch
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import cattrs
from attrs import field, frozen

from theta import catalog
from theta.errors import SpecError, ThetaError
from theta.git.repo import Repo
from theta.merges import MergeStrategy, OptionError, structure_options, unstructure_options
from theta.plugins import Registry
from theta.specfiles import make_converter, structure

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

POLICY_FILE = ".theta/merge-policy.toml"
POLICY_SETTING = "theta.mergePolicy"
STRATEGY_ENV = "THETA_MERGE_STRATEGY"
DEFAULT_STRATEGY = "fail"
POLICY_VERSION = 1


# ---- the file, as written --------------------------------------------------------------


@frozen(kw_only=True)
class StrategySpec:
    strategy: str
    options: dict[str, Any] = field(factory=dict)


@frozen(kw_only=True)
class RuleSpec:
    params: tuple[str, ...]
    strategy: str
    paths: tuple[str, ...] | None = None
    options: dict[str, Any] = field(factory=dict)


@frozen(kw_only=True)
class PolicySpec:
    version: int
    default: StrategySpec | None = None
    rules: tuple[RuleSpec, ...] = ()


def _strings(value: Any, _: type) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of strings, got {value!r}")
    return tuple(value)


def _options_table(value: Any, _: type) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a table of options, got {value!r}")
    return dict(value)


def _make_converter() -> cattrs.Converter:
    converter = make_converter(mapping="a table")
    converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _strings)
    converter.register_structure_hook_func(lambda t: t == dict[str, Any], _options_table)
    return converter


_converter = _make_converter()


# ---- the policy, resolved against the registry ----------------------------------------


@frozen(kw_only=True)
class Choice:
    """What the policy gives one parameter: a strategy, its options (structured), and why."""

    strategy: str
    options: Any
    source: str

    def recorded_options(self) -> dict[str, Any]:
        return unstructure_options(self.options)

    def describe(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.recorded_options().items())
        return f"{self.strategy}" + (f" ({shown})" if shown else "")


@frozen(kw_only=True)
class Rule:
    params: tuple[str, ...]
    paths: tuple[str, ...] | None
    choice: Choice

    def matches(self, path: str, name: str) -> bool:
        if self.paths is not None and not any(fnmatch.fnmatchcase(path, g) for g in self.paths):
            return False
        return any(fnmatch.fnmatchcase(name, g) for g in self.params)


@frozen(kw_only=True)
class Policy:
    """Rules in order, then the default. `origin` says where the policy came from."""

    origin: str
    rules: tuple[Rule, ...]
    default: Choice

    def choose(self, path: str, name: str) -> Choice:
        for rule in self.rules:
            if rule.matches(path, name):
                return rule.choice
        return self.default


def glob_problem(glob: str) -> str | None:
    """Why `glob` is not a usable fnmatch pattern; None when it is."""
    if not glob:
        return "a glob must not be empty"
    at = 0
    while (at := glob.find("[", at)) != -1:
        end = at + 1
        if end < len(glob) and glob[end] == "!":
            end += 1
        if end < len(glob) and glob[end] == "]":
            end += 1
        close = glob.find("]", end)
        if close == -1:
            return f"bad glob {glob!r}: the '[' at position {at} is never closed"
        at = close + 1
    return None


def resolve_choice(
    registry: Registry, strategy: str, raw_options: Mapping[str, Any], where: str, source: str, options_at: str = ""
) -> Choice:
    """The strategy named `strategy` with `raw_options` structured.

    Errors name `where` (`rules[1]`: `rules[1].strategy`, `rules[1].options.weight`), or
    `options_at` for the options when given (`--option ` gives `--option weight`).
    """
    strategies = registry.merge_strategies
    found: MergeStrategy | None = strategies.get(strategy)
    if found is None:
        registered = ", ".join(sorted(strategies)) or "none"
        provider = catalog.provider("merge_strategies", strategy)
        hint = f"; install {provider} (`pip install {provider}`)" if provider else ""
        at = f"{where}.strategy" if not options_at else where
        raise SpecError(f"{at}: unknown strategy {strategy!r} (registered: {registered}){hint}")
    try:
        options = structure_options(found.options_type, dict(raw_options), options_at or f"{where}.options", strategy)
    except OptionError as exc:
        raise SpecError(str(exc)) from None
    return Choice(strategy=strategy, options=options, source=source)


def parse_policy(data: bytes, filename: str, registry: Registry) -> Policy:
    """The policy file `data` checked against the registry; a `SpecError` naming file, rule and field."""
    try:
        raw = tomllib.loads(data.decode())
    except UnicodeDecodeError:
        raise SpecError(f"{filename}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{filename}: not valid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{filename}: nested too deeply to be a merge policy") from None
    version = raw.get("version")
    if version is not None and version != POLICY_VERSION:
        raise SpecError(
            f"{filename}: version: merge policy version {version!r} is not supported by this version"
            f" of Theta (it reads version {POLICY_VERSION}); upgrade theta-kernel"
        )
    spec = structure(_converter, raw, PolicySpec, filename)
    try:
        rules = tuple(_rule(registry, spec_rule, index) for index, spec_rule in enumerate(spec.rules))
        if spec.default is None:
            default = _builtin_default(registry)
        else:
            default = resolve_choice(registry, spec.default.strategy, spec.default.options, "default", "default")
    except SpecError as exc:
        raise SpecError(f"{filename}: {exc}") from None
    return Policy(origin=filename, rules=rules, default=default)


def _rule(registry: Registry, spec: RuleSpec, index: int) -> Rule:
    where = f"rules[{index}]"
    for key, globs in (("params", spec.params), ("paths", spec.paths)):
        if globs is None:
            continue
        if not globs:
            raise SpecError(f"{where}.{key}: must list at least one glob")
        for position, glob in enumerate(globs):
            problem = glob_problem(glob)
            if problem is not None:
                raise SpecError(f"{where}.{key}[{position}]: {problem}")
    choice = resolve_choice(registry, spec.strategy, spec.options, where, where)
    return Rule(params=spec.params, paths=spec.paths, choice=choice)


def _builtin_default(registry: Registry) -> Choice:
    """`DEFAULT_STRATEGY` with its default options; when it is not installed, parameters simply conflict."""
    strategy = registry.merge_strategies.get(DEFAULT_STRATEGY)
    options = strategy.options_type() if strategy is not None else None
    return Choice(strategy=DEFAULT_STRATEGY, options=options, source="default")


def single_strategy(registry: Registry, strategy: str, source: str) -> Policy:
    """A policy that gives every parameter `strategy` with its default options (THETA_MERGE_STRATEGY)."""
    choice = resolve_choice(registry, strategy, {}, source, source, options_at=f"{source} options")
    return Policy(origin=source, rules=(), default=choice)


def policy_location(repo: Repo) -> tuple[Path, str, bool]:
    """The policy file's path, the name messages use for it, and whether a setting chose it."""
    configured = repo.config(POLICY_SETTING)
    relative = configured or POLICY_FILE
    path = Path(relative)
    return (path if path.is_absolute() else repo.top_level / path), relative, configured is not None


def load_policy(repo: Repo, registry: Registry, environ: Mapping[str, str] = os.environ) -> Policy:
    """The policy in force for this command: THETA_MERGE_STRATEGY, else the file, else the default."""
    override = environ.get(STRATEGY_ENV)
    if override:
        return single_strategy(registry, override, STRATEGY_ENV)
    path, shown, configured = policy_location(repo)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if configured:
            raise ThetaError(f"git config {POLICY_SETTING} names {shown}, which does not exist") from None
        return Policy(origin="no merge policy file", rules=(), default=_builtin_default(registry))
    except OSError as exc:
        raise ThetaError(f"{shown}: cannot be read: {exc.strerror}") from None
    return parse_policy(data, shown, registry)


def parse_option_values(pairs: Sequence[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs from a command line; each VALUE is read as TOML (`0.5`, `true`, `[1, 2]`), else as text."""
    found: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ThetaError(f"--option {pair!r}: expected KEY=VALUE, e.g. --option weight=0.3")
        try:
            found[key] = tomllib.loads(f"value = {text}")["value"]
        except tomllib.TOMLDecodeError:
            found[key] = text
    return found
