"""Settings come from CITYVERSE_* variables, then flags; bad values are clear errors."""

from __future__ import annotations

import pytest

from cityverse.settings import Settings


def test_defaults() -> None:
    s = Settings.from_env({})
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 1026, 1)
    assert s.store_url.startswith("sqlite:///") and s.store_url.endswith("cityverse.db")


def test_environment_then_overrides() -> None:
    env = {
        "CITYVERSE_PORT": "2000",
        "CITYVERSE_STORE": "postgresql://u@h/db",
        "CITYVERSE_MAX_LIMIT": "50",
    }
    s = Settings.from_env(env, port=3000, workers=None)
    assert s.port == 3000
    assert s.store_url == "postgresql://u@h/db"
    assert s.max_limit == 50
    assert s.workers == 1


def test_data_dir_places_the_sqlite_file(tmp_path: object) -> None:
    s = Settings.from_env({"CITYVERSE_DATA_DIR": "/srv/city"})
    assert s.store_url == "sqlite:////srv/city/cityverse.db"


def test_bad_number_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CITYVERSE_PORT='http' is not a valid int"):
        Settings.from_env({"CITYVERSE_PORT": "http"})
