"""Finding, downloading, cleaning and refusing data files."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest

from churn import data
from churn.config import DataSettings
from churn.data import DataFileError, clean, download, load_clean, resolve_data_path
from tests.synthetic import raw_frame, write_csv


def test_clean_normalizes_names_values_and_target_on_pandas3_string_columns():
    raw = raw_frame(50).astype("string")  # pandas 3's default text dtype
    # The course's selection finds no text column here, which is why it trained on churn == 0.
    assert list(raw.dtypes[raw.dtypes == "object"].index) == []
    cleaned = clean(raw)
    assert "seniorcitizen" in cleaned.columns and "customerid" in cleaned.columns
    assert set(cleaned["contract"]) <= {"month-to-month", "one_year", "two_year"}
    assert set(cleaned["internetservice"]) == {"dsl", "fiber_optic", "no"}
    assert set(cleaned["churn"]) == {0, 1}
    assert cleaned["churn"].sum() == (raw["Churn"] == "Yes").sum()


def test_clean_gives_the_same_frame_for_object_and_string_columns():
    raw = raw_frame(80, seed=3)
    from_object = clean(raw.astype(object))
    from_string = clean(raw.astype("string"))
    for column in from_object.columns:
        assert list(from_object[column]) == list(from_string[column]), column


def test_blank_totalcharges_become_zero_and_numbers_are_floats():
    raw = raw_frame(60, seed=1)
    cleaned = clean(raw)
    blank = raw["TotalCharges"].str.strip() == ""
    assert blank.any()
    assert (cleaned.loc[blank, "totalcharges"] == 0).all()
    assert cleaned["monthlycharges"].dtype == "float64"
    assert cleaned["seniorcitizen"].isin([0, 1]).all()


def test_real_file_cleans_to_the_known_shape(real_data):
    frame = load_clean(real_data)
    assert len(frame) == 7043
    assert 0.25 < frame["churn"].mean() < 0.28
    assert set(frame["paymentmethod"]) == {
        "electronic_check",
        "mailed_check",
        "bank_transfer_(automatic)",
        "credit_card_(automatic)",
    }


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe\x00", "not a readable CSV"),
        (b"a,b,c\n1,2,3\n", "missing column"),
    ],
)
def test_files_that_are_not_the_telco_csv_are_refused(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(DataFileError, match=expected):
        load_clean(path)


def test_a_target_with_one_class_is_refused(tmp_path):
    frame = raw_frame(40)
    frame["Churn"] = "No"
    with pytest.raises(DataFileError, match="only one class"):
        load_clean(Path(write_csv(tmp_path / "one.csv", frame)))


def test_header_only_file_is_refused(tmp_path):
    frame = raw_frame(5).iloc[:0]
    with pytest.raises(DataFileError, match="no rows"):
        load_clean(Path(write_csv(tmp_path / "header.csv", frame)))


def test_data_path_prefers_cli_then_env(tmp_path):
    cli, env = tmp_path / "cli.csv", tmp_path / "env.csv"
    cli.write_text("x")
    env.write_text("x")
    assert resolve_data_path(str(cli), DataSettings(data_file=env)) == cli
    assert resolve_data_path(None, DataSettings(data_file=env)) == env
    with pytest.raises(DataFileError, match="CHURN_DATA"):
        resolve_data_path(None, DataSettings(data_file=tmp_path / "missing.csv"))


@pytest.fixture()
def file_server(tmp_path):
    """A loopback HTTP server over a folder: stands in for the public copy of the data."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_download_verifies_sha256_and_writes_the_file(file_server, real_data, tmp_path, capsys):
    root, base = file_server
    (root / "telco.csv").write_bytes(real_data.read_bytes())
    target = tmp_path / "data" / "telco.csv"
    download(f"{base}/telco.csv", target, data.sha256_of(real_data))
    assert target.read_bytes() == real_data.read_bytes()
    assert "100%" in capsys.readouterr().err  # the progress display reached the end
    assert [p.name for p in target.parent.iterdir()] == ["telco.csv"]


def test_download_with_wrong_checksum_leaves_nothing(file_server, tmp_path):
    root, base = file_server
    (root / "telco.csv").write_text("not,the,data\n")
    target = tmp_path / "data" / "telco.csv"
    with pytest.raises(DataFileError, match="SHA-256"):
        download(f"{base}/telco.csv", target, "0" * 64)
    assert list(target.parent.iterdir()) == []


def test_offline_download_names_the_three_ways_to_provide_the_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A loopback port nobody listens on: the download fails as it would offline.
    env = {"CHURN_DATA_URL": "http://127.0.0.1:9/telco.csv"}
    with pytest.raises(DataFileError) as error:
        resolve_data_path(None, DataSettings.from_env(env))
    message = str(error.value)
    assert "--data" in message and "CHURN_DATA" in message and "data/" in message
    assert not (tmp_path / "data" / data.DEFAULT_DATA_PATH.name).exists()
