"""Tables as people have them: text categories, booleans, empty cells, identifiers and constant
columns, encoded from the training split, kept with the model as JSON, applied by predict."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import dltune
from dltune.data.arrays import encoded_targets
from dltune.data.columns import RawColumn, from_cells, labels
from dltune.data.encoding import MAX_LEVELS, fit_encoding
from dltune.data.split import split_three
from dltune.errors import DataError
from dltune.export import train_best
from dltune.export.predict import predict_table, read_table

from .helpers import dltune as run_cli

pd = pytest.importorskip("pandas")

SPACE = {
    "layers": 1,
    "units": [16, 32],
    "activation": "relu",
    "dropout": 0.0,
    "optimizer": "adam",
    "learning_rate": {"low": 3e-3, "high": 3e-2, "log": True},
    "batch_size": 32,
    "epochs": 4,
}
COLUMNS = ["id", "sex", "age", "fare", "embarked", "alone", "deck", "const", "survived"]
DECKS = [f"D{k}" for k in range(20)]  # more labels than the cap


def passengers(n: int = 160, seed: int = 0) -> list[list[str]]:
    """Rows as a CSV holds them: text, booleans, blanks; the target follows sex and age."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        sex = str(rng.choice(["male", "female"]))
        age = rng.normal(35, 12)
        alone = bool(rng.integers(0, 2))
        p = 0.8 if sex == "female" else 0.2
        survived = int(rng.random() < p + (0.1 if age < 30 else -0.1))
        rows.append(
            [
                str(1000 + i),
                sex,
                "" if i % 9 == 4 else f"{age:.1f}",
                f"{abs(rng.normal(30, 20)):.2f}",
                "" if i % 13 == 6 else str(rng.choice(["S", "C", "Q"], p=[0.6, 0.25, 0.15])),
                "True" if alone else "False",
                str(rng.choice(DECKS)),
                "same",
                "" if i in (10, 77) else str(survived),
            ]
        )
    return rows


def write_csv(path: Path, header: list[str] | None, rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(header)
        writer.writerows(rows)
    return path


def rows_of_the_test_split(rows: list[list[str]]) -> list[list[str]]:
    """The test split's rows of the file, as load_data carves them (rows without a target
    set aside first)."""
    kept = [r for r in rows if r[-1] != ""]
    targets, classes, _ = encoded_targets(np.array([float(r[-1]) for r in kept]), None, "t")
    _, _, test, _ = split_three(len(kept), targets, 0, classes)
    return [kept[i] for i in test]


@pytest.fixture(scope="module")
def studied(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A 2-trial study on the passengers' CSV and its model folder."""
    root = tmp_path_factory.mktemp("tabular")
    rows = passengers()
    write_csv(root / "passengers.csv", COLUMNS, rows)
    storage = f"sqlite:///{root / 'studies.db'}"
    result = dltune.tune(
        SPACE,
        str(root / "passengers.csv"),
        target="survived",
        storage=storage,
        trials=2,
        seed=0,
        schedule="none",
        workers=1,
        choose="max",
    )
    best = train_best(storage)
    best.save(root / "model")
    return {"root": root, "rows": rows, "storage": storage, "result": result, "best": best}


# ---- the encoder itself ---------------------------------------------------------------------


def test_a_table_is_encoded_and_the_notes_say_what_was_done(studied):
    ds = dltune.load_data(studied["root"] / "passengers.csv", target="survived")
    names = ds.feature_names
    assert names[:3] == ["sex=male", "sex=female", "sex=<other>"] or names[:3] == [
        "sex=female",
        "sex=male",
        "sex=<other>",
    ]
    assert {"age", "age_missing", "fare", "alone", "embarked=<missing>", "embarked=<other>"} <= set(
        names
    )
    assert "fare_missing" not in names  # no empty fare in training: no is-missing column
    assert not any(n.startswith(("id", "const")) for n in names)  # dropped
    assert sum(n.startswith("deck=") for n in names) == MAX_LEVELS + 1  # the cap, and <other>
    assert ds.n_features == len(names) and sum(ds.sizes) == 158  # two rows without a target
    notes = "\n".join(ds.notes)
    for expected in (
        "dropped 2 row(s) whose target 'survived' is empty (line 12, line 79)",
        "'id' (an identifier: all",
        "'const' (constant: 'same' in every training row)",
        "1 boolean column(s) as 0/1",
        "'deck' has 20 labels in training: the 16 most frequent",
        "with the training split's median; is-missing column(s) for 'age'",
    ):
        assert expected in notes, notes
    assert "one-hot ('sex', 'embarked', 'deck'" in notes
    assert "features out (2 dropped)" in notes and str(ds.n_features) in notes
    # the study shows them too
    assert any("one-hot" in n for n in studied["result"].notes)
    # and the strict reading is still there
    with pytest.raises(DataError, match=r"feature column 'sex' is not numeric.*Encode it"):
        dltune.load_data(studied["root"] / "passengers.csv", target="survived", encode=False)


def test_medians_and_levels_come_from_the_training_rows_alone():
    from sklearn.impute import SimpleImputer
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(3)
    ages = rng.normal(40, 9, 30)
    ages[[2, 7]] = np.nan
    ages[20:] = 1000.0  # the rows outside training: they must not move the median
    colors = np.array(["red", "blue", None, "red", "green"] * 4 + ["purple"] * 10, dtype=object)
    columns = [RawColumn("age", "number", ages), RawColumn("color", "category", colors)]
    train = np.arange(20)
    encoding = fit_encoding(columns, train, "t")
    age, color = encoding.columns
    expected = SimpleImputer(strategy="median").fit(ages[train, None]).statistics_[0]
    assert age.median == expected and age.indicator
    assert color.levels == ("red", "blue", "green") and color.missing_level  # by count
    encoded = encoding.transform({"age": ages, "color": colors}, "t")
    x = encoded.x
    assert encoding.feature_names == [
        "age",
        "age_missing",
        "color=red",
        "color=blue",
        "color=green",
        "color=<missing>",
        "color=<other>",
    ]
    imputed = SimpleImputer(strategy="median", add_indicator=True).fit(ages[train, None])
    assert np.array_equal(x[:, :2], imputed.transform(ages[:, None]).astype(np.float32))
    present = np.array([c is not None for c in colors])
    reference = OneHotEncoder(categories=[list(color.levels)], handle_unknown="ignore")
    onehot = reference.fit(colors[train][present[train], None]).transform(colors[:, None])
    assert np.array_equal(x[present, 2:5], onehot.toarray()[present])
    assert np.array_equal(x[:, 5], (~present).astype(np.float32))  # missing: its own level
    assert np.array_equal(x[:, 6], (colors == "purple").astype(np.float32))  # unseen: <other>
    assert encoded.imputed == {"age": 2} and encoded.unseen == {"color": {"purple": 10}}
    again = type(encoding).from_dict(json.loads(json.dumps(encoding.to_dict())), "t")
    assert again.columns == encoding.columns  # plain JSON, read back the same


def test_which_columns_are_identifiers_or_constant():
    n = 40
    train = np.arange(30)
    cases = {
        "row": (np.arange(n, dtype=float) + 7, "dropped"),  # a running number
        "cents": (np.arange(n, dtype=float) * 997 + 13, "number"),  # distinct, whole, spread
        "float": (np.linspace(0, 1, n), "number"),  # distinct but not whole
        "one": (np.full(n, 3.0), "dropped"),
        "gappy": (np.where(np.arange(n) % 3, 5.0, np.nan), "number"),  # 5 or missing: kept
        "empty": (np.full(n, np.nan), "dropped"),
    }
    columns = [RawColumn(name, "number", v) for name, (v, _) in cases.items()]
    columns += [
        RawColumn("name", "category", labels([f"person {i}" for i in range(n)])),
        RawColumn("flag", "boolean", np.ones(n)),
    ]
    kinds = {c.name: c.kind for c in fit_encoding(columns, train, "t").columns}
    assert kinds == {name: kind for name, (_, kind) in cases.items()} | {
        "name": "dropped",
        "flag": "dropped",
    }
    with pytest.raises(DataError, match=r"no feature column is left.*'one' \(constant"):
        fit_encoding([columns[3]], train, "t.csv")


def test_csv_cells_are_read_as_numbers_booleans_or_labels():
    assert from_cells("a", ["1", " 2.5", "", "NA"]).kind == "number"
    assert from_cells("b", ["True", "false", "", "TRUE"]).kind == "boolean"
    assert from_cells("c", ["x", "1", ""]).values.tolist() == ["x", "1", None]
    assert from_cells("d", ["", ""]).kind == "number"  # nothing there: constant, dropped


# ---- the model keeps it: train-best, the folder, predict -------------------------------------


def test_the_folder_keeps_the_encoder_as_plain_json(studied):
    folder = studied["root"] / "model"
    prep = json.loads((folder / "preprocessing.json").read_text())
    by_name = {c["name"]: c for c in prep["encoding"]["columns"]}
    assert list(by_name) == COLUMNS[:-1]  # the table's order, the target left out
    assert by_name["id"]["kind"] == "dropped" and by_name["sex"]["kind"] == "category"
    assert isinstance(by_name["age"]["median"], float) and by_name["age"]["missing_indicator"]
    assert len(by_name["deck"]["levels"]) == MAX_LEVELS and by_name["deck"]["folded_labels"] == 4
    assert prep["feature_names"] == studied["best"].model.feature_names
    card = json.loads((folder / "model_card.json").read_text())
    assert any("one-hot" in note for note in card["data"]["encoding"])
    assert "encoded from the training split" in (folder / "model_card.md").read_text()
    assert sorted(p.suffix for p in folder.iterdir()) == [".json"] * 3 + [".md", ".safetensors"]


def new_rows(rows: list[list[str]]) -> list[list[str]]:
    """Rows to predict: an unseen sex and deck, empty cells in every kind of column."""
    out = [r.copy() for r in rows[:30]]
    out[0][1] = "unknown"  # unseen category
    out[1][6] = "D99"
    out[2][2] = out[2][3] = ""  # numbers: fare had no empty cell in training
    out[3][4] = out[3][5] = out[3][1] = ""  # a category with and one without a missing level
    return out


def test_train_best_then_predict_round_trip(studied, tmp_path):
    root, trained = studied["root"], studied["best"].model
    loaded = dltune.load(root / "model")
    rows = new_rows(studied["rows"])
    frame = pd.DataFrame(rows, columns=COLUMNS).drop(columns="survived")
    frame = frame.replace("", None)
    expected = trained.predict_proba(frame)
    assert np.array_equal(loaded.predict_proba(frame), expected)
    # a CSV in another order, without the dropped columns and the target
    order = ["deck", "fare", "alone", "embarked", "age", "sex"]
    index = [COLUMNS.index(c) for c in order]
    path = write_csv(tmp_path / "new.csv", order, [[r[j] for j in index] for r in rows])
    result = predict_table(loaded, read_table(path))
    assert np.array_equal(result.probabilities, expected)
    assert result.value is None  # no target: nothing to score
    notes = "\n".join(result.notes)
    assert "imputed" in notes and "1 in 'fare'" in notes
    assert "'unknown'" in notes and "'D99'" in notes and "sex=<other>" in notes
    # without a header: the training table's columns, by position, the target left out
    headless = write_csv(tmp_path / "headless.csv", None, [r[:-1] for r in rows])
    assert np.array_equal(predict_table(loaded, read_table(headless)).probabilities, expected)
    # an array by position, as the estimators' callers give it
    assert np.array_equal(loaded.predict_proba(np.array(rows, dtype=object)[:, :-1]), expected)


def test_the_card_test_metric_is_what_predict_gives_on_the_test_split(studied, tmp_path):
    rows = rows_of_the_test_split(studied["rows"])
    path = write_csv(tmp_path / "test.csv", COLUMNS, rows)
    card = studied["best"].card
    ran = run_cli("predict", str(studied["root"] / "model"), str(path), "-o", "p.csv", cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    value = card["test"]["value"]
    assert f"accuracy on these rows (the data hold the target): {value:.6g}" in ran.stdout
    result = predict_table(dltune.load(studied["root"] / "model"), read_table(path))
    assert result.value == value and card["test"]["rows"] == len(rows) == result.rows


def test_predict_errors_name_the_column_and_the_fix(studied, tmp_path):
    model = studied["best"].model
    rows = studied["rows"][:5]
    path = write_csv(tmp_path / "a.csv", COLUMNS[:-1], [r[:-1] for r in rows])
    with pytest.raises(DataError, match=r"column\(s\) 'sex' are missing.*in any order"):
        predict_table(model, read_table(write_csv(path, COLUMNS[2:-1], [r[2:-1] for r in rows])))
    with pytest.raises(DataError, match=r"unknown column\(s\) 'cabin'.*Drop the others"):
        predict_table(
            model, read_table(write_csv(path, ["cabin", *COLUMNS], [["x", *r] for r in rows]))
        )
    bad = [r.copy() for r in rows]
    bad[3][2] = "old"
    with pytest.raises(DataError, match=r"a.csv: column 'age' holds 'old' at line 5.*number"):
        predict_table(model, read_table(write_csv(path, COLUMNS, bad)))
    with pytest.raises(
        DataError, match=r"names none of the model's columns.*without one, the 8 columns"
    ):
        predict_table(model, read_table(write_csv(path, None, [r[1:-1] for r in rows])))


# ---- Parquet, pandas, the estimators, exports, the command line --------------------------------


def test_parquet_with_categorical_nullable_and_boolean_columns(tmp_path):
    pytest.importorskip("pyarrow")
    rng = np.random.default_rng(1)
    n = 120
    color = pd.Categorical(rng.choice(["red", "green", "blue"], n))
    size = pd.array([None if i % 10 == 3 else int(v) for i, v in enumerate(rng.integers(1, 9, n))])
    flag = pd.array([None if i % 15 == 0 else bool(v) for i, v in enumerate(rng.integers(0, 2, n))])
    y = np.where((np.asarray(color) == "red") | (rng.random(n) < 0.2), "yes", "no")
    frame = pd.DataFrame({"color": color, "size": size, "flag": flag, "label": y})
    assert str(frame["size"].dtype) == "Int64" and str(frame["flag"].dtype) == "boolean"
    frame.to_parquet(tmp_path / "t.parquet")
    ds = dltune.load_data(tmp_path / "t.parquet", target="label")
    assert ds.feature_names[:4] == ["color=blue", "color=green", "color=red", "color=<other>"] or (
        set(ds.feature_names[:3]) == {"color=blue", "color=green", "color=red"}
    )
    assert {"size", "size_missing", "flag", "flag_missing"} <= set(ds.feature_names)
    assert ds.encoding is not None and [c.kind for c in ds.encoding.columns] == [
        "category",
        "number",
        "boolean",
    ]
    storage = f"sqlite:///{tmp_path / 's.db'}"
    space = {**SPACE, "units": 8, "epochs": 1}
    parquet = str(tmp_path / "t.parquet")
    dltune.tune(space, parquet, target="label", storage=storage, trials=1, workers=1, choose="max")
    model = train_best(storage).model
    result = predict_table(model, read_table(tmp_path / "t.parquet"))  # the file's own types
    assert np.array_equal(result.probabilities, model.predict_proba(frame.drop(columns="label")))
    assert result.metric == "accuracy" and result.value is not None


def test_the_estimators_take_a_dataframe_with_text_and_empty_cells(studied):
    frame = pd.DataFrame(studied["rows"], columns=COLUMNS).replace("", None)
    frame = frame[frame["survived"].notna()]
    x, y = frame.drop(columns="survived"), frame["survived"].astype(int).to_numpy()
    x["age"] = pd.to_numeric(x["age"])  # a float column with NaN, as pandas reads it
    x["alone"] = x["alone"] == "True"
    clf = dltune.DLTuneClassifier(space=SPACE, trials=1, schedule="none").fit(x, y)
    assert clf.n_features_in_ == 8 and list(clf.feature_names_in_) == COLUMNS[:-1]
    assert set(clf.predict(x)) <= {0, 1} and clf.predict_proba(x).shape == (len(x), 2)
    reordered = x[list(reversed(x.columns))]
    assert np.array_equal(clf.predict_proba(reordered), clf.predict_proba(x))
    assert clf.score(x, y) > 0.5
    reg = dltune.DLTuneRegressor(space={**SPACE, "loss": "mean_squared_error"}, trials=1)
    fare = pd.to_numeric(x.pop("fare")).to_numpy()
    reg.fit(x, fare)
    assert reg.predict(x).shape == (len(x),) and np.isfinite(reg.predict(x)).all()


def test_onnx_takes_the_encoded_features(studied, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from dltune.export.formats import export

    model = studied["best"].model
    frame = pd.DataFrame(new_rows(studied["rows"]), columns=COLUMNS).replace("", None)
    result = export(model, "onnx", tmp_path / "m.onnx")
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    features = model.features(frame)
    assert features.shape == (len(frame), len(model.feature_names))
    (got,) = session.run(None, {"features": features})
    np.testing.assert_allclose(got, model.predict_proba(frame), rtol=1e-4, atol=1e-5)


def test_run_encodes_by_default_and_no_encode_keeps_the_strict_error(studied, tmp_path):
    csv_path = str(studied["root"] / "passengers.csv")
    storage = f"sqlite:///{tmp_path / 's.db'}"
    ran = run_cli(
        "run", "--data", csv_path, "--target", "survived", "--no-encode", "--storage", storage,
        "--trials", "1", cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 2
    assert "feature column 'sex' is not numeric (line 2 holds 'female')" in ran.stderr
    space = tmp_path / "space.yaml"
    space.write_text("layers: 1\nunits: 8\nepochs: 1\nbatch_size: 64\n")
    ran = run_cli(
        "run", str(space), "--data", csv_path, "--target", "survived", "--storage", storage,
        "--trials", "1", "--schedule", "none", "--workers", "1", "--choose", "max", cwd=tmp_path,
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert "note: dropped 2 row(s) whose target 'survived' is empty" in ran.stdout
    assert "note: encoded 3 text column(s) one-hot" in ran.stdout


def test_a_study_read_strictly_is_read_strictly_again_by_train_best(tmp_path):
    # a running id: the encoder would drop it, so the two readings differ in fingerprint
    rng = np.random.default_rng(2)
    rows = [
        [i, f"{a:.3f}", f"{b:.3f}", int(a + b > 0)]
        for i, (a, b) in enumerate(rng.normal(size=(60, 2)))
    ]
    path = write_csv(tmp_path / "n.csv", ["id", "a", "b", "y"], rows)
    strict = dltune.load_data(path, target="y", encode=False)
    assert strict.feature_names == ["id", "a", "b"] and strict.encoding is None
    assert dltune.load_data(path, target="y").feature_names == ["a", "b"]
    storage = f"sqlite:///{tmp_path / 's.db'}"
    space = {**SPACE, "units": 8, "epochs": 1}
    dltune.tune(space, strict, target="y", storage=storage, trials=1, workers=1, choose="max")
    best = train_best(storage)  # loads n.csv again as the study did: strictly
    assert (
        best.model.feature_names == ["id", "a", "b"] and best.model.preprocessing.encoding is None
    )
