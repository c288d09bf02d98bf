"""Settings: where values come from, validation, and the one table the option types reuse."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from segserve.settings import MASK_FORMATS, Settings
from segserve.types import SegmentOptions


@pytest.fixture(autouse=True)
def _no_dotenv(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout


def test_environment_then_dotenv_then_defaults(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("SEGSERVE_PORT=9100\nSEGSERVE_MAX_QUEUE=4\n")
    monkeypatch.setenv("SEGSERVE_MAX_QUEUE", "7")
    s = Settings()
    assert (s.port, s.max_queue, s.workers) == (9100, 7, 1)  # .env, environment over .env, default
    assert Settings(max_queue=2).max_queue == 2  # keyword arguments (the CLI's flags) win


def test_defaults_ignore_the_environment(monkeypatch):
    monkeypatch.setenv("SEGSERVE_THRESHOLD", "0.9")
    assert Settings().threshold == 0.9
    assert Settings.defaults().threshold == 0.5  # what library code gets when handed no settings


def test_replace_validates_without_reading_the_environment_again(monkeypatch):
    base = Settings.defaults()
    monkeypatch.setenv("SEGSERVE_PORT", "1234")
    assert base.replace(workers=2).port == 8000
    with pytest.raises(ValidationError, match="workers"):
        base.replace(workers=0)


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("SEGSERVE_THRESHOLD", "1.5"),  # a confidence above 1
        ("SEGSERVE_MAX_SEGMENTS", "0"),  # nothing to return
        ("SEGSERVE_MASK_FORMAT", "png"),  # not a mask format
        ("SEGSERVE_EVERYTHING_MODE", "panoptic"),  # not a mode
        ("SEGSERVE_MAX_QUEUE", "-1"),  # a negative queue
        ("SEGSERVE_HEADER_TIMEOUT", "0"),  # every connection closed at once
        ("SEGSERVE_MAX_CONNECTIONS", "0"),  # no connection ever served
        ("SEGSERVE_VOCABULARY", " , ;"),  # a vocabulary of nothing
    ],
)
def test_bad_values_are_refused_at_start(monkeypatch, env, value):
    monkeypatch.setenv(env, value)
    with pytest.raises(ValidationError):
        Settings()


def test_a_zero_queue_is_allowed_and_means_refuse_when_busy(monkeypatch):
    monkeypatch.setenv("SEGSERVE_MAX_QUEUE", "0")
    assert Settings().max_queue == 0


def test_api_keys_come_from_the_list_and_the_file(tmp_path):
    keys_file = tmp_path / "keys.txt"
    keys_file.write_text("# rotated monthly\nfile-key\n\n  spaced-key  \n")
    s = Settings(api_keys="a, b,,", api_keys_file=keys_file)
    assert s.api_key_list() == ["a", "b", "file-key", "spaced-key"]


def test_the_request_options_are_these_settings(monkeypatch):
    # One table: a server default set in the environment is what an omitted request field becomes.
    monkeypatch.setenv("SEGSERVE_MASK_THRESHOLD", "0.4")
    monkeypatch.setenv("SEGSERVE_MASK_FORMAT", "polygon")
    options = SegmentOptions.resolve(Settings())
    assert (options.mask_threshold, options.mask_format) == (0.4, "polygon")
    for name, field in SegmentOptions.model_fields.items():
        assert field.description == Settings.model_fields[name].description and field.description
    assert SegmentOptions.model_json_schema()["properties"]["mask_format"]["enum"] == list(MASK_FORMATS)
