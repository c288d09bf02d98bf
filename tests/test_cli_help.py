"""`segserve serve --help` says what it does, and every option its default and its `SEGSERVE_*` twin,
both taken from `Settings` (issue 14.3)."""

from __future__ import annotations

import argparse
import re

from segserve.cli import build_parser
from segserve.settings import Settings


def _serve_parser() -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["serve"]


def test_serve_help_has_a_description():
    assert "POST /v1/images/segmentation" in (_serve_parser().description or "")


def test_every_serve_option_names_its_default_and_a_real_variable():
    for action in _serve_parser()._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        text = action.help or ""
        assert "default" in text, action.option_strings
        names = re.findall(r"SEGSERVE_([A-Z_]+)", text)
        assert names, action.option_strings
        for name in names:
            assert name.lower() in Settings.model_fields, (action.option_strings, name)


def test_the_defaults_shown_are_the_settings_defaults():
    for action in _serve_parser()._actions:
        # --api-key appends to api_keys; its dest shares a name with the client's api_key setting
        if isinstance(action, argparse._AppendAction):
            continue
        if action.dest in Settings.model_fields and action.nargs is None and action.const is None:
            value = Settings.model_fields[action.dest].default
            shown = "none" if value in (None, "") else str(value)
            assert f"(default {shown}; SEGSERVE_{action.dest.upper()})" in action.help, action.help


def test_the_help_text_shows_the_queue_workers_and_timeout():
    text = " ".join(_serve_parser().format_help().split())  # argparse wraps lines
    assert "(default 16; SEGSERVE_MAX_QUEUE)" in text
    assert "(default 1; SEGSERVE_WORKERS)" in text
    assert "(default 300.0; SEGSERVE_REQUEST_TIMEOUT)" in text
    assert "(default off; SEGSERVE_NO_AUTH=1)" in text
    assert "(default info; SEGSERVE_LOG_LEVEL)" in text
