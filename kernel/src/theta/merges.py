"""What a merge-strategy plugin implements, and the arithmetic its strategies share.

When both branches changed a parameter differently, the merge policy picks a strategy and
its options for it, and the kernel calls `strategy.merge(name, base, ours, theirs, options)`
one parameter at a time. The strategy returns the merged tensor, `None` (the parameter is
left out of the result), or a `Conflict` with the reason; it never raises for inputs it cannot
handle. Options are an attrs class of the strategy's own (`options_type`); the kernel
structures the policy's `options` table into it with `structure_options` (unknown keys and
wrong types are errors naming the field) and records `unstructure_options(options)` in the
merged parameter's metadata.

Arithmetic works on values, not bits: `values` turns (a span of) a tensor into float32
numbers (float64 for float64 tensors), exactly, and `Output` collects computed values as the
tensor's dtype, rounding to nearest even. Both go span by span (`spans`), so a strategy holds
the three versions and the result, plus small temporaries.
"""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, Literal, TypeVar, get_args, get_origin

import attrs
import cattrs
import numpy as np
from attrs import frozen
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError
from cattrs.v import transform_error

from theta.bits import little_uint, raw_bits, to_bits, to_values
from theta.errors import ThetaError
from theta.specfiles import make_converter
from theta.tensors import Tensor, dtype

__all__ = [
    "CHUNK_ELEMENTS",
    "FLOAT_DTYPES",
    "Conflict",
    "MergeStrategy",
    "NoOptions",
    "OptionError",
    "Output",
    "Side",
    "arithmetic_conflict",
    "at_least",
    "between",
    "each",
    "finite",
    "spans",
    "structure_options",
    "unstructure_options",
    "values",
    "work_dtype",
]

Side = Literal["base", "ours", "theirs"]
SIDES: tuple[Side, ...] = ("base", "ours", "theirs")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
CHUNK_ELEMENTS = 1 << 20
OptionsT = TypeVar("OptionsT")


@frozen(kw_only=True)
class Conflict:
    """A parameter the strategy leaves to the user, and why (one line, no parameter name)."""

    reason: str


@frozen(kw_only=True)
class NoOptions:
    """The options of a strategy that takes none."""


class MergeStrategy(abc.ABC):
    """Combines the versions of one parameter that both branches changed differently.

    Implement as a frozen attrs class and register an instance. `options_type` is an attrs
    class (`@frozen(kw_only=True)`, every field typed and with a default where it has one);
    validators that raise `ValueError` reject out-of-range values, and `between`/`at_least`
    make messages that name the field. The kernel merges two parameters at once, on worker
    threads: `merge` must keep no state between calls.
    """

    name: ClassVar[str]
    options_type: ClassVar[type] = NoOptions

    def choose(self, name: str, options: Any) -> Side | Conflict | None:
        """Decide without tensors, when the strategy can: called before anything is loaded.

        A side (`"base"`, `"ours"`, `"theirs"`) makes the kernel keep that version's stored
        entry as it is (nothing is loaded, fetched or stored; a side that lacks the parameter
        leaves it out); a `Conflict` leaves the parameter to the user; `None` (the default)
        has the kernel load the three versions and call `merge`.
        """
        return None

    @abc.abstractmethod
    def merge(
        self, name: str, base: Tensor | None, ours: Tensor | None, theirs: Tensor | None, options: Any
    ) -> Tensor | Conflict | None:
        """The merged tensor of parameter `name`, None to leave it out, or a `Conflict`.

        `base` is None when the merge base lacks the parameter (both branches added it);
        `ours` or `theirs` is None when that branch removed it (the other changed it). The
        result must depend only on these arguments (same inputs, same bits, on any machine);
        inputs the strategy cannot handle give a `Conflict` with the reason, never an exception.
        """


# ---- options ---------------------------------------------------------------------------


class OptionError(ThetaError):
    """Options that do not fit a strategy's options class; the message names the field."""


class OptionValueError(ValueError):
    """Raised by `between`/`at_least`: `field` names the option that is out of range."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def between(low: float, high: float, *, low_open: bool = False) -> Callable[[Any, Any, Any], None]:
    """An attrs validator: `low <= value <= high` (`low < value` with `low_open`)."""

    def check(_: Any, attribute: Any, value: Any) -> None:
        below = value <= low if low_open else value < low
        if below or value > high or value != value:
            left = "(" if low_open else "["
            raise OptionValueError(attribute.name, f"must be in {left}{low:g}, {high:g}], got {value!r}")

    return check


def at_least(low: float) -> Callable[[Any, Any, Any], None]:
    """An attrs validator: `value >= low`."""

    def check(_: Any, attribute: Any, value: Any) -> None:
        if not value >= low:
            raise OptionValueError(attribute.name, f"must be at least {low:g}, got {value!r}")

    return check


def finite() -> Callable[[Any, Any, Any], None]:
    """An attrs validator: a finite number (not NaN, not infinite)."""

    def check(_: Any, attribute: Any, value: Any) -> None:
        if not np.isfinite(value):
            raise OptionValueError(attribute.name, f"must be a finite number, got {value!r}")

    return check


def each(validator: Callable[[Any, Any, Any], None]) -> Callable[[Any, Any, Any], None]:
    """An attrs validator applying `validator` to every item of a tuple."""

    def check(instance: Any, attribute: Any, value: Any) -> None:
        for item in value:
            validator(instance, attribute, item)

    return check


def _make_converter() -> cattrs.Converter:
    converter = make_converter()

    def structure_tuple(value: Any, type_: Any) -> tuple[Any, ...]:
        args = get_args(type_)
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            kinds = [args[0]] * len(value)
        elif len(value) != len(args):
            raise ValueError(f"expected a list of {len(args)} values, got {len(value)}")
        else:
            kinds = list(args)
        return tuple(converter.structure(v, k) for v, k in zip(value, kinds, strict=True))

    converter.register_structure_hook_func(lambda t: get_origin(t) is tuple, structure_tuple)
    return converter


_converter = _make_converter()


def _describe(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, KeyError):
        return "required option missing"
    if isinstance(exc, (ValueError, TypeError)) and str(exc):
        return str(exc)
    return f"invalid value ({type(exc).__name__})"


def structure_options(options_type: type[OptionsT], raw: Any, where: str, strategy: str) -> OptionsT:
    """`raw` (a policy's `options` table) as an `options_type`; `where` prefixes every message.

    Raises `OptionError` with lines like `rules[1].options.weight: expected a number, got 'x'`.
    """
    if not isinstance(raw, dict):
        raise OptionError(f"{where.rstrip()}: expected a table of options, got {raw!r}")
    known = [f.name for f in attrs.fields(options_type)]
    extra = sorted(set(raw) - set(known))
    if extra:
        takes = ", ".join(known) if known else "no options"
        unknown = ", ".join(map(repr, extra))
        raise OptionError(f"{where.rstrip()}: unknown option(s) {unknown} ({strategy} takes: {takes})")
    try:
        return _converter.structure(raw, options_type)
    except (ClassValidationError, IterableValidationError, ForbiddenExtraKeysError) as exc:
        ranged = [e for e in getattr(exc, "exceptions", ()) if isinstance(e, OptionValueError)]
        if ranged:  # a validator ran in the class's __init__: it named the field itself
            raise OptionError(f"{_join(where, '.' + ranged[0].field)}: {ranged[0].message}") from None
        lines = transform_error(exc, path="$", format_exception=_describe)
        raise OptionError("; ".join(_field_first(line, where) for line in lines)) from None
    except OptionValueError as exc:
        raise OptionError(f"{_join(where, '.' + exc.field)}: {exc.message}") from None
    except (ValueError, TypeError) as exc:
        raise OptionError(f"{where.rstrip()}: {exc}") from None


def _field_first(line: str, where: str) -> str:
    message, _, at = line.rpartition(" @ ")
    return f"{_join(where, at.removeprefix('$'))}: {message}"


def _join(where: str, field: str) -> str:
    """`rules[0].options` + `.weight`; a `where` ending in a space takes the field bare (`--option weight`)."""
    return where + field.removeprefix(".") if where.endswith(" ") else where + field


def unstructure_options(options: Any) -> dict[str, Any]:
    """The options as JSON values (lists for tuples), every field included: what the metadata records."""

    def plain(value: Any) -> Any:
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {key: plain(value) for key, value in _converter.unstructure(options).items()}


# ---- arithmetic ------------------------------------------------------------------------


def arithmetic_conflict(
    base: Tensor | None, ours: Tensor | None, theirs: Tensor | None, *, needs_base: bool
) -> Conflict | None:
    """Why elementwise arithmetic cannot combine these versions; None when it can."""
    if ours is None or theirs is None:
        side = "ours" if ours is None else "theirs"
        return Conflict(reason=f"removed on {side} side and changed on the other")
    if needs_base and base is None:
        return Conflict(reason="not in the merge base (added on both sides): there is no change to combine")
    for side, tensor in (("ours", ours), ("theirs", theirs), ("base", base)):
        if tensor is not None and tensor.dtype not in FLOAT_DTYPES:
            return Conflict(reason=f"{side} is {tensor.dtype}: only floating-point tensors can be combined")
    for side, tensor in (("theirs", theirs), ("base", base)):
        if tensor is not None and not tensor.same_layout(ours):
            return Conflict(
                reason=f"ours is {ours.dtype} {list(ours.shape)} but {side} is {tensor.dtype} {list(tensor.shape)}"
            )
    return None


def work_dtype(name: str) -> type[np.floating[Any]]:
    """The dtype arithmetic on tensors of dtype `name` is done in: float64 for float64, else float32."""
    return np.float64 if name == "float64" else np.float32


def spans(numel: int, size: int = CHUNK_ELEMENTS) -> Iterator[slice]:
    """Consecutive element ranges of at most `size` elements covering `numel` (one empty span for 0)."""
    if numel == 0:
        yield slice(0, 0)
    for start in range(0, numel, size):
        yield slice(start, min(numel, start + size))


def values(tensor: Tensor, span: slice | None = None) -> np.ndarray:
    """Elements `span` of the flattened tensor as float32 (float64 for float64) numbers, exactly."""
    bits = raw_bits(tensor)
    if span is not None:
        bits = bits[span]
    if tensor.dtype not in FLOAT_DTYPES:
        raise ThetaError(f"values() needs a floating-point tensor, got {tensor.dtype}")
    return to_values(bits, tensor.dtype)


class Output:
    """A tensor of `dtype` and `shape` filled span by span with computed values."""

    def __init__(self, dtype_name: str, shape: tuple[int, ...]) -> None:
        self.dtype = dtype_name
        self.shape = tuple(shape)
        numel = int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1
        self._bits = np.empty(numel, dtype=little_uint(dtype(dtype_name).itemsize))

    @classmethod
    def like(cls, tensor: Tensor) -> Output:
        return cls(tensor.dtype, tensor.shape)

    def put(self, span: slice, computed: np.ndarray) -> None:
        """Store `computed` as elements `span`, rounded to the dtype (nearest even)."""
        computed = np.asarray(computed, dtype=work_dtype(self.dtype))
        if computed.itemsize == self._bits.itemsize:  # float32 and float64 are their own bits: no copy
            self._bits[span] = computed.view(self._bits.dtype)
        else:
            self._bits[span] = to_bits(computed, self.dtype)

    def tensor(self) -> Tensor:
        return Tensor(dtype=self.dtype, shape=self.shape, data=self._bits.view(np.uint8))
