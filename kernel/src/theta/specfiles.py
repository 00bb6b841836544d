"""Reading spec files with cattrs: errors name the file and the field that is wrong."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, get_origin

import attrs
import cattrs
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.gen import make_dict_structure_fn, make_mapping_structure_fn
from cattrs.v import transform_error

from theta.errors import SpecError

T = TypeVar("T")


def make_converter(mapping: str = "an object") -> cattrs.Converter:
    """A converter that takes each value as its field's type says, never converting one: a size of
    1.5 or a format of 5 is an error, not 1 or "5".

    Where a record (an attrs class) or a dict belongs, anything but a mapping is an error saying
    so ("expected an object, got None"): `mapping` is the file format's word for one.
    """
    converter = cattrs.Converter(forbid_extra_keys=True)
    converter.register_structure_hook(str, _strict_str)
    converter.register_structure_hook(int, _strict_int)
    converter.register_structure_hook(float, _strict_float)
    converter.register_structure_hook(bool, _strict_bool)
    converter.register_structure_hook_func(lambda t: t == tuple[int, ...], _structure_int_tuple)
    converter.register_structure_hook_factory(
        attrs.has, lambda cls: _mappings_only(make_dict_structure_fn(cls, converter), mapping)
    )
    converter.register_structure_hook_factory(
        _is_mapping_type, lambda t: _mappings_only(make_mapping_structure_fn(t, converter), mapping)
    )
    return converter


def _is_mapping_type(type_: Any) -> bool:
    origin = get_origin(type_)
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _mappings_only(structure_fields: Any, mapping: str) -> Any:
    def check(value: Any, type_: type) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"expected {mapping}, got {_brief(value)}")
        return structure_fields(value, type_)

    return check


def _brief(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."


def _field_name(name: Any) -> str:
    """A field name as a message shows it: quoted and escaped when it would break the line or vanish."""
    return name if isinstance(name, str) and name.isprintable() and name.strip() == name and name else repr(name)


def _strict_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _strict_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    return value


def _strict_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _strict_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _structure_int_tuple(value: Any, _: type) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise ValueError(f"expected a list of integers, got {value!r}")
    return tuple(value)


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, KeyError):
        return "required field missing"
    if isinstance(exc, ForbiddenExtraKeysError):
        return f"unknown field(s): {', '.join(_field_name(k) for k in sorted(exc.extra_fields))}"
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
