"""Reading spec files with cattrs: errors name the file and the field that is wrong."""

from __future__ import annotations

from typing import Any, TypeVar

import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.v import transform_error

from theta.errors import SpecError

T = TypeVar("T")


def make_converter() -> cattrs.Converter:
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook_func(lambda t: t == tuple[int, ...], _structure_int_tuple)
    return converter


def _structure_int_tuple(value: Any, _: type) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"expected a list of integers, got {value!r}")
    return tuple(value)


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unknown field(s): {', '.join(sorted(exc.extra_fields))}"
    if isinstance(exc, (ValueError, TypeError)) and str(exc):
        return str(exc)
    return f"invalid value ({type(exc).__name__})"


def _field_first(line: str) -> str:
    message, _, where = line.rpartition(" @ ")
    where = where.removeprefix("$").removeprefix(".") or "(top level)"
    return f"{where}: {message}"


def structure(converter: cattrs.Converter, raw: Any, cls: type[T], filename: str) -> T:
    """Structure `raw` into `cls`, turning every error into one `SpecError` naming the file."""
    try:
        return converter.structure(raw, cls)
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError) as exc:
        lines = transform_error(exc, path="$", format_exception=_format_exception)
        details = "; ".join(_field_first(line) for line in lines)
        raise SpecError(f"{filename}: {details}") from None
    except (ValueError, TypeError) as exc:
        raise SpecError(f"{filename}: {exc}") from None
