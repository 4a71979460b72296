"""The shape of one example: read from an array's own axes, or asked for (``shape``), and checked.

The rule, the same for .npz files and :func:`from_arrays`: ``x`` of 2 axes ``(N, F)`` is a
table of F features (flat); 3 axes ``(N, C, L)`` a signal of C channels of length L; 4 axes
``(N, C, H, W)`` an image of C channels. IDX files hold images without a channel axis, so
``(N, H, W)`` becomes ``(1, H, W)``. A ``shape`` given to :func:`dltune.data.load_data`
(``(C, L)``, ``(C, H, W)``, or the text ``"C,L"`` / ``"C,H,W"``) reshapes any source whose
examples hold that many values, row-major; the arrays themselves always stay flat
``(N, n_features)`` (see :class:`Dataset`), so only the networks see the shape.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from dltune.errors import DataError, param

MAX_AXES = 3  # (C, H, W): what the networks understand
SHAPE_RULE = (
    "x of shape (N, F) is a table of F features, (N, C, L) a signal of C channels, "
    "(N, C, H, W) an image of C channels"
)
SHAPE_FIX = "give the shape of one example as C,L (a signal) or C,H,W (an image)"

Shape = tuple[int, ...]


def shape_text(shape: Sequence[int]) -> str:
    """(1, 28, 28) as '1,28,28', the way --shape is written."""
    return ",".join(str(n) for n in shape)


def parse_shape(value: str | Sequence[int] | None) -> Shape | None:
    """``shape`` as given (None, a sequence of positive ints, or the text "C,L" / "C,H,W";
    "1x28x28" is accepted too), as a tuple; a DataError naming the value if not."""
    if value is None:
        return None
    parts: list[object]
    if isinstance(value, str):
        parts = list(_split_text(value))
    else:
        try:
            parts = list(value)
        except TypeError:
            raise DataError(f"{param('shape', value)} is not a shape; {SHAPE_FIX}.") from None
    numbers: list[int] = []
    for part in parts:
        number = _whole(part)
        if number is None or number < 1:
            raise DataError(
                f"{param('shape', _shown(value))}: {part!r} is not a positive whole number; "
                f"{SHAPE_FIX}, e.g. 1,28,28."
            )
        numbers.append(number)
    if not 1 <= len(numbers) <= MAX_AXES:
        raise DataError(
            f"{param('shape', _shown(value))} has {len(numbers)} axes; {SHAPE_FIX} "
            f"(at most {MAX_AXES} axes, e.g. 1,28,28)."
        )
    return tuple(numbers)


def _split_text(text: str) -> list[str]:
    """ "1,28,28" (or "(1, 28, 28)", "1x28x28") as its parts; an empty part is kept, to be
    refused, so that "2,,3" is not read as 2,3."""
    text = text.strip().strip("()[]").strip()
    if not text:
        return []
    separator = "x" if "x" in text and "," not in text else ","
    return [p.strip() for p in text.split(separator)]


def _whole(part: object) -> int | None:
    if isinstance(part, bool):
        return None
    if isinstance(part, int):
        return part
    if hasattr(part, "__index__"):  # numpy integers
        return int(part)
    if isinstance(part, str) and re.fullmatch(r"\d+", part.strip()):
        return int(part)
    return None


def _shown(value: object) -> str:
    return value if isinstance(value, str) else shape_text(value)  # type: ignore[arg-type]


def check_shape(shape: Shape, n_features: int, where: str) -> Shape:
    """``shape`` if it holds ``n_features`` values per example; a DataError that says so if not."""
    size = math.prod(shape)
    if size != n_features:
        raise DataError(
            f"{where}: {param('shape', shape_text(shape))} holds {size} values per example, but "
            f"the data have {n_features} features per example; give a shape whose product is "
            f"{n_features} (e.g. {_example(n_features)}), or leave {param('shape')} out."
        )
    return shape


def _example(n: int) -> str:
    """A shape of n values to suggest: a square image if n is a square, else a signal."""
    side = math.isqrt(n)
    return f"1,{side},{side}" if side * side == n and n > 1 else f"1,{n}"


def array_example_shape(dims: Sequence[int], where: str, what: str = "x") -> Shape:
    """The shape of one example of an array with these dims (npz and from_arrays' rule):
    (N, F) -> (F,), (N, C, L) -> (C, L), (N, C, H, W) -> (C, H, W); 1 axis is one feature."""
    dims = tuple(int(n) for n in dims)
    if len(dims) == 1:
        return (1,)
    if 2 <= len(dims) <= 4:
        return dims[1:]
    raise DataError(
        f"{where}: {what} has shape {dims} ({len(dims)} axes); {SHAPE_RULE}. Reshape it to one of "
        f"these, or save it flat as (N, F) and give {param('shape', shown='C,H,W')}."
    )


def idx_example_shape(dims: Sequence[int], where: str) -> Shape:
    """IDX images: (N, H, W) -> (1, H, W) (one channel); (N, C, H, W) kept; (N, F) a table."""
    dims = tuple(int(n) for n in dims)
    if 0 in dims[1:]:
        raise DataError(
            f"{where}: an IDX images file of shape {dims} holds no values per example (an axis "
            "of length 0); write the images with their height and width."
        )
    if len(dims) == 3:
        return (1, *dims[1:])
    if len(dims) in (2, 4):
        return dims[1:]
    raise DataError(
        f"{where}: an IDX images file of shape {dims} ({len(dims)} axes); dltune reads "
        f"(N, H, W) or (N, C, H, W) images, or (N, F) rows."
    )


def same_example_shape(
    x_shape: Sequence[int], other: Sequence[int], where: str, name: str, other_name: str
) -> None:
    """Every split's examples have the training examples' shape (a DataError naming both)."""
    mine, theirs = _per_example(x_shape), _per_example(other)
    if mine != theirs:
        raise DataError(
            f"{where}: {other_name} holds examples of shape {theirs} but {name} holds examples "
            f"of shape {mine}; every split needs the same per-example shape. Save {other_name} "
            f"as (N, {', '.join(str(n) for n in mine)})."
        )


def _per_example(dims: Sequence[int]) -> Shape:
    dims = tuple(int(n) for n in dims)
    return dims[1:] if len(dims) > 1 else (1,)
