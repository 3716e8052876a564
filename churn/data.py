"""Finding, downloading, checking and cleaning the Telco customer churn CSV."""

from __future__ import annotations

import hashlib
import sys
import urllib.request
from pathlib import Path

import pandas as pd

from churn.artifact import write_atomically
from churn.config import DATA_URL, DEFAULT_DATA_PATH, ConfigError, DataSettings
from churn.features import FEATURE_FIELDS, FLAG_FIELDS, NUMERIC_FIELDS, TARGET, normalize_token

DATA_SHA256 = "88be4b93fbe0cc83421af1c503794c97c342eca914c1576db7c276e61d61358a"
HOW_TO_PROVIDE = f"""Provide the Telco churn CSV in one of three ways:
  1. python train.py --data PATH/TO/{DEFAULT_DATA_PATH.name}
  2. export CHURN_DATA=PATH/TO/{DEFAULT_DATA_PATH.name}
  3. save it as {DEFAULT_DATA_PATH} (downloaded from {DATA_URL})"""


class DataFileError(Exception):
    """The data file is missing, unreachable or not the Telco churn CSV."""


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def resolve_data_path(cli_path: str | None, settings: DataSettings | None = None) -> Path:
    """``--data`` first, then ``$CHURN_DATA``, then ``data/`` (downloaded there when missing)."""
    settings = DataSettings.from_env() if settings is None else settings
    for path, source in ((cli_path, "--data"), (settings.data_file, "CHURN_DATA")):
        if path:
            if not Path(path).is_file():
                raise DataFileError(f"{source} points at {path}, which is not a file.")
            return Path(path)
    if DEFAULT_DATA_PATH.exists():
        return DEFAULT_DATA_PATH
    return download(settings.data_url, DEFAULT_DATA_PATH, DATA_SHA256)


def download(url: str, target: Path, expected_sha256: str) -> Path:
    """Download ``url`` to ``target`` atomically, showing progress and checking its SHA-256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"{target} not found; downloading {url}", file=sys.stderr)
    data = bytearray()
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # noqa: S310 - configured URL
            total = int(response.headers.get("Content-Length") or 0)
            while block := response.read(64 * 1024):
                data += block
                shown = f"{len(data) * 100 // total:3d}% " if total else ""
                progress = f"\r  {shown}{len(data) / 1024:,.0f} KiB"
                print(progress, end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected_sha256:
            raise DataFileError(
                f"Downloaded file has SHA-256 {actual}, expected {expected_sha256}; not using it.\n"
                + HOW_TO_PROVIDE
            )
        write_atomically(target, bytes(data))
    except OSError as error:  # urllib's URLError is one
        raise DataFileError(f"Could not download the data ({error}).\n" + HOW_TO_PROVIDE) from None
    return target


def load_raw(path: Path) -> pd.DataFrame:
    """Read the CSV as text, refusing files that are empty or not CSV."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataFileError(f"{path} is empty; expected the Telco churn CSV.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as error:
        raise DataFileError(f"{path} is not a readable CSV file: {error}") from None


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    """The course's cleaning: names and text values lower case with underscores, blank
    ``totalcharges`` as 0, and ``churn`` 1 for "yes" and 0 for "no".

    Every column is turned to text first, so it holds for pandas 2 (object) and pandas 3 (str)
    columns alike: the course picks text columns by the object dtype, which pandas 3 lacks.
    """
    frame = raw.rename(columns=lambda name: normalize_token(str(name)))  # a copy
    missing = [c for c in (*FEATURE_FIELDS, TARGET) if c not in frame.columns]
    if missing:
        raise DataFileError(
            f"The data file is not the Telco churn CSV: missing column(s) {', '.join(missing)} "
            f"(found {len(frame.columns)} columns, expected 21)."
        )
    if len(frame) == 0:
        raise DataFileError("The data file has a header but no rows.")
    for column in set(frame.columns) - set(NUMERIC_FIELDS) - set(FLAG_FIELDS):
        frame[column] = frame[column].astype(str).map(normalize_token)
    for column in NUMERIC_FIELDS:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").fillna(0).astype("float64")
    for column in FLAG_FIELDS:
        values = pd.to_numeric(frame[column], errors="coerce")
        if not values.isin([0, 1]).all():  # NaN is not in it either
            raise DataFileError(f"Column {column} must hold only 0 and 1.")
        frame[column] = values.astype("int64")
    unknown = sorted(set(frame[TARGET]) - {"yes", "no"})
    if unknown:
        raise DataFileError(f"Column churn must be yes/no; found {unknown[:5]}.")
    frame[TARGET] = (frame[TARGET] == "yes").astype("int64")
    if frame[TARGET].nunique() < 2:
        raise DataFileError(
            "Column churn has only one class; a churn model needs both churned and kept customers."
        )
    return frame


def load_clean(path: Path) -> pd.DataFrame:
    """Load and clean the CSV at ``path`` (raises ``DataFileError`` with what is wrong)."""
    return clean(load_raw(path))


def main() -> int:
    """``python -m churn.data``: make sure the CSV is there (download it if needed)."""
    try:
        print(resolve_data_path(None))
    except (DataFileError, ConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
