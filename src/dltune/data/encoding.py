"""Tables as people have them, turned into the numbers a network takes: the encoder.

Fitted on the training split alone (as the standardization is), applied to every split and to
the new rows of `predict`; kept with a model as plain JSON (:meth:`TableEncoding.to_dict`).

The rules, per column of the training split:

- **numbers**: kept; a missing cell takes the column's median, and a column with missing cells
  in training gets an is-missing column beside it (``age_missing``: 1 where it was imputed), so
  the network can tell an imputed value from a real one.
- **booleans**: one 0/1 column, imputed as numbers are.
- **categories** (text, pandas categoricals): one-hot. At most ``MAX_LEVELS`` (16) levels get a
  column each, the most frequent in training; the rest share an ``<other>`` column, which also
  takes, at prediction, every label training never saw. So a column of many labels costs at
  most 18 columns, and an unseen label is read like a rare one rather than refused. Missing
  cells are a level of their own (``<missing>``), whatever their count.
- **dropped**, with a note: a constant column (one value in training, missing counted as one)
  and an identifier: labels all distinct in training, or whole numbers all distinct that fill
  at least half of their range (a row number, a running id; a measurement that happens to be
  distinct and whole, such as a price in cents, spreads much wider and is kept).

Why a cap rather than frequency or ordinal codes for many labels: a one-hot column per frequent
label keeps each input meaning one thing (``city=Paris``), which the network, the report and
the exports read alike, and it adds no order between labels that do not have one (ordinal
codes would); frequency codes would merge two labels of equal count. The labels past the cap
are, by construction, rare, and what they share is what they have in common: being rare.

The state is plain data computed by hand rather than kept as fitted scikit-learn objects: a
model folder must be JSON (nothing unpickled when it is read), and training and prediction must
run the same code so that a folder predicts bit for bit what the in-memory model did. The
medians come from scikit-learn's SimpleImputer(strategy="median"); the one-hot matches
OneHotEncoder(categories=...) on the kept levels (tests/test_tabular.py checks both). Its own
OneHotEncoder(max_categories=...) would put missing cells among the infrequent labels and give
unseen labels all zeros when no label is infrequent, where these rules keep a missing level and
always have an ``<other>``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dltune.errors import DataError

from .columns import KINDS, RawColumn, converted

MAX_LEVELS = 16  # one-hot columns per category column, besides <missing> and <other>
MISSING_LEVEL, OTHER_LEVEL = "<missing>", "<other>"
MISSING_SUFFIX = "_missing"  # the is-missing column of a number or boolean column


@dataclass(frozen=True)
class ColumnCode:
    """How one input column becomes features: `kind` number, boolean, category or dropped."""

    name: str
    kind: str
    median: float | None = None  # number, boolean: what a missing cell becomes
    indicator: bool = False  # number, boolean: an is-missing column follows
    levels: tuple[str, ...] = ()  # category: a column each, most frequent first
    missing_level: bool = False  # category: missing cells had a level in training
    folded: int = 0  # category: labels of training past the cap, sharing <other>
    why: str = ""  # dropped: the reason, for the note

    @property
    def features(self) -> list[str]:
        """The names of the features this column makes, in order."""
        if self.kind == "dropped":
            return []
        if self.kind == "category":
            extra = [MISSING_LEVEL] * self.missing_level + [OTHER_LEVEL]
            return [f"{self.name}={v}" for v in [*self.levels, *extra]]
        return [self.name] + [self.name + MISSING_SUFFIX] * self.indicator

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind}
        if self.kind in ("number", "boolean"):
            out |= {"median": self.median, "missing_indicator": self.indicator}
        elif self.kind == "category":
            out |= {
                "levels": list(self.levels),
                "missing_level": self.missing_level,
                "folded_labels": self.folded,
            }
        else:
            out["why"] = self.why
        return out


@dataclass
class Encoded:
    """The features of a table, and what it took to make them."""

    x: np.ndarray  # float32 (n, n_features)
    imputed: dict[str, int] = field(default_factory=dict)  # number/boolean column -> cells
    unseen: dict[str, Counter[str]] = field(default_factory=dict)  # category -> labels new


@dataclass(frozen=True)
class TableEncoding:
    """The fitted encoder: one ColumnCode per input column, in the order of the training table
    (the target left out). `source_kinds` is what each column was read as in training."""

    columns: tuple[ColumnCode, ...]
    source_kinds: tuple[str, ...]
    rows: int  # the training rows it was fitted on
    # Notes from fitting that the saved form need not keep (a column of numbers read as text)
    hints: tuple[str, ...] = ()

    @property
    def inputs(self) -> list[str]:
        """The input columns' names, dropped ones included, in training order."""
        return [c.name for c in self.columns]

    @property
    def feature_names(self) -> list[str]:
        return [name for c in self.columns for name in c.features]

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    def transform(
        self,
        values: Mapping[str, Any],
        where: str,
        row_label: Callable[[int], str] = lambda i: f"row {i}",
    ) -> Encoded:
        """Features from each input column's cells (by name; a dropped column may be absent).
        Cells may be text, numbers, booleans or None, whatever the model was trained on."""
        parts: list[np.ndarray] = []
        encoded = Encoded(np.zeros((0, 0), dtype=np.float32))
        n = None
        for code, kind in zip(self.columns, self.source_kinds, strict=True):
            if code.kind == "dropped":
                continue
            cells = converted(values[code.name], _read_as(code, kind), where, code.name, row_label)
            n = len(cells)
            if code.kind == "category":
                parts.append(_one_hot(code, cells, encoded))
            else:
                missing = np.isnan(cells)
                if missing.any():
                    encoded.imputed[code.name] = int(missing.sum())
                # The median is a float64; cast with the column, as an unimputed cell is.
                parts.append(np.where(missing, float(code.median or 0.0), cells)[:, None])
                if code.indicator:
                    parts.append(missing.astype(np.float64)[:, None])
        encoded.x = np.concatenate(parts, axis=1).astype(np.float32) if parts else encoded.x
        if n == 0:
            encoded.x = np.zeros((0, self.n_features), dtype=np.float32)
        return encoded

    def to_dict(self) -> dict[str, Any]:
        return {
            "columns": [
                {**c.to_dict(), "read_as": k}
                for c, k in zip(self.columns, self.source_kinds, strict=True)
            ],
            "max_levels": MAX_LEVELS,
            "rows": self.rows,
        }

    @classmethod
    def from_dict(cls, d: Any, where: str) -> TableEncoding:
        """Read back `to_dict`'s output; a ValueError names what is wrong (the caller says
        which file)."""
        if not isinstance(d, dict) or not isinstance(d.get("columns"), list):
            raise ValueError("'encoding' must be an object with a list of 'columns'")
        codes, kinds = [], []
        for entry in d["columns"]:
            code, kind = _code_from_dict(entry)
            codes.append(code)
            kinds.append(kind)
        if len({c.name for c in codes}) != len(codes):
            raise ValueError("'encoding' names a column twice")
        return cls(tuple(codes), tuple(kinds), int(d.get("rows", 0)))

    def describe(self, imputed: Mapping[str, int] | None = None) -> list[str]:
        """What the encoder did, as notes (one per kind of thing done)."""
        return describe(self, imputed or {})


def _read_as(code: ColumnCode, source_kind: str) -> Any:
    """How new cells of a column are read: as in training."""
    return "category" if code.kind == "category" else source_kind


def _one_hot(code: ColumnCode, labels: np.ndarray, encoded: Encoded) -> np.ndarray:
    """(n, levels + <missing>? + <other>) of 0/1: each label's column; a missing cell its own
    level, or <other> when training had none; a label past the cap or unseen, <other>."""
    slot = {level: k for k, level in enumerate(code.levels)}
    missing = len(code.levels) if code.missing_level else None
    other = len(code.levels) + code.missing_level
    out = np.zeros((len(labels), other + 1), dtype=np.float64)
    for i, v in enumerate(labels):
        k = (missing if missing is not None else other) if v is None else slot.get(v, other)
        out[i, k] = 1.0
    new = Counter(v for v in labels if v is not None and v not in slot)
    if new:
        encoded.unseen[code.name] = new
    return out


def _code_from_dict(entry: Any) -> tuple[ColumnCode, str]:
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ValueError(f"an encoding column must be an object with a 'name'; got {entry!r}")
    name, kind, read_as = entry["name"], entry.get("kind"), entry.get("read_as", entry.get("kind"))
    if kind not in ("number", "boolean", "category", "dropped") or read_as not in (
        *KINDS,
        "dropped",
    ):
        raise ValueError(f"column {name!r}: kind {kind!r} (read as {read_as!r}) is not known")
    if kind in ("number", "boolean"):
        median = entry.get("median")
        if not isinstance(median, (int, float)) or not np.isfinite(median):
            raise ValueError(f"column {name!r}: its median must be a number; got {median!r}")
        code = ColumnCode(name, kind, float(median), bool(entry.get("missing_indicator")))
    elif kind == "category":
        levels = entry.get("levels")
        if not isinstance(levels, list) or not all(isinstance(v, str) for v in levels):
            raise ValueError(f"column {name!r}: 'levels' must be a list of labels")
        code = ColumnCode(
            name,
            kind,
            levels=tuple(levels),
            missing_level=bool(entry.get("missing_level")),
            folded=int(entry.get("folded_labels", 0)),
        )
    else:
        code = ColumnCode(name, kind, why=str(entry.get("why", "")))
    return code, read_as


# ---- fitting ---------------------------------------------------------------------------------


def fit_encoding(columns: Sequence[RawColumn], train: np.ndarray, where: str) -> TableEncoding:
    """The encoder of `columns`, learned from the rows `train` alone."""
    codes = tuple(_fit_column(c.take(train)) for c in columns)
    if all(c.kind == "dropped" for c in codes):
        dropped = ", ".join(f"{c.name!r} ({c.why})" for c in codes)
        raise DataError(
            f"{where}: no feature column is left: every one was dropped: {dropped}. Add columns "
            f"that vary, or keep them with encode=False (they must then be numbers)."
        )
    hints = tuple(h for c in columns if (h := _numbers_as_text(c)))
    return TableEncoding(codes, tuple(c.kind for c in columns), len(train), hints)


def _numbers_as_text(column: RawColumn) -> str:
    """A hint when a text column is numbers but for a few cells (a typo, or a code for
    'unknown' that would better be an empty cell): it is read as labels, not as numbers."""
    if column.kind != "category":
        return ""
    present = [v for v in column.values if v is not None]
    text = [v for v in present if _is_text(v)]
    words = sorted(set(text))
    # a few cells (a tenth at most) of a few spellings: a slip, not a column of labels
    if not text or len(words) > 3 or len(text) * 10 > len(present):
        return ""
    shown = ", ".join(repr(w) for w in words)
    return (
        f"{column.name!r} is read as text for {shown}, though its other cells are numbers; to "
        f"read it as numbers, fix those cells or leave them empty (empty cells are imputed)"
    )


def _is_text(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return True
    return False


def _fit_column(column: RawColumn) -> ColumnCode:
    missing = column.missing
    n_missing, n = int(missing.sum()), len(missing)
    present = column.values[~missing]
    distinct = len(set(present.tolist()))
    if distinct + (n_missing > 0) <= 1:
        shown = "missing" if not distinct else repr(_shown(present[0]))
        return ColumnCode(column.name, "dropped", why=f"constant: {shown} in every training row")
    if n_missing == 0 and distinct == n and _identifier(column.kind, present):
        return ColumnCode(
            column.name, "dropped", why=f"an identifier: all {n} training values distinct"
        )
    if column.kind == "category":
        counts = Counter(present.tolist())
        # Most frequent first; equal counts in the labels' order, so a refit gives the same.
        ranked = sorted(counts, key=lambda v: (-counts[v], v))
        return ColumnCode(
            column.name,
            "category",
            levels=tuple(ranked[:MAX_LEVELS]),
            missing_level=n_missing > 0,
            folded=max(0, len(ranked) - MAX_LEVELS),
        )
    return ColumnCode(column.name, column.kind, _median(column.values), indicator=n_missing > 0)


def _identifier(kind: str, present: np.ndarray) -> bool:
    """All-distinct values that name rows rather than measure them: labels, or whole numbers
    that fill at least half of their range."""
    if kind == "category":
        return True
    if kind != "number" or not np.all(np.mod(present, 1) == 0):
        return False
    span = float(present.max() - present.min()) + 1
    return span <= 2 * len(present)


def _median(values: np.ndarray) -> float:
    """The median of the present values, as scikit-learn's SimpleImputer computes it."""
    from sklearn.impute import SimpleImputer  # lazy: sklearn is slow to import

    imputer = SimpleImputer(strategy="median").fit(values.reshape(-1, 1))
    return float(imputer.statistics_[0])


def _shown(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# ---- the notes -------------------------------------------------------------------------------


def _listed(names: Sequence[str], most: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def describe(encoding: TableEncoding, imputed: Mapping[str, int]) -> list[str]:
    """Notes: columns encoded and the features made, cells imputed, columns dropped."""
    codes = encoding.columns
    by_kind = {k: [c for c in codes if c.kind == k] for k in ("category", "boolean", "dropped")}
    kept = [c for c in codes if c.kind != "dropped"]
    notes = list(encoding.hints)
    made = f"{len(kept)} columns in, {encoding.n_features} features out"
    if by_kind["dropped"]:
        made += f" ({len(by_kind['dropped'])} dropped)"
    if by_kind["category"] or by_kind["boolean"]:
        parts = []
        if by_kind["category"]:
            cats = by_kind["category"]
            parts.append(
                f"{len(cats)} text column(s) one-hot ({_listed([c.name for c in cats])}: "
                f"{sum(len(c.features) for c in cats)} columns with each one's <other>)"
            )
        if by_kind["boolean"]:
            parts.append(f"{len(by_kind['boolean'])} boolean column(s) as 0/1")
        notes.append(f"encoded {' and '.join(parts)}; {made}")
    for c in (c for c in by_kind["category"] if c.folded):
        notes.append(
            f"{c.name!r} has {len(c.levels) + c.folded} labels in training: the {MAX_LEVELS} "
            f"most frequent have a column each, the other {c.folded} share {c.name}={OTHER_LEVEL} "
            f"(as does, at prediction, a label never seen in training)"
        )
    if imputed:
        flagged = [c.name for c in kept if c.indicator]
        notes.append(
            f"imputed {sum(imputed.values())} empty cell(s) in {_listed(list(imputed))} with "
            f"the training split's median"
            + (f"; is-missing column(s) for {_listed(flagged)}" if flagged else "")
        )
    if by_kind["dropped"]:
        notes.append(
            "dropped column(s) " + "; ".join(f"{c.name!r} ({c.why})" for c in by_kind["dropped"])
        )
    return notes
