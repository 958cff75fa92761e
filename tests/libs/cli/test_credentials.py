"""Where the CLI finds its API key, first found wins: WHATLEAD_API_KEY, the file WHATLEAD_CREDENTIALS
names, .data/credentials.json under the working directory. No key: one line, exit 1, no call."""

from __future__ import annotations

import json

import pytest

from libs.cli.common import credentials
from tests.libs.cli.conftest import API_KEY

FILE_KEY = "wl_file0001_" + "f" * 43
DEFAULT_KEY = "wl_dflt0001_" + "d" * 43


def write(path, **fields) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(fields))
    return str(path)


@pytest.fixture
def both_files(no_credentials, monkeypatch):
    named = write(
        no_credentials / "elsewhere" / "creds.json", organization_id="org-f", api_key=FILE_KEY, role="ADMIN"
    )
    write(
        no_credentials / ".data" / "credentials.json",
        organization_id="org-d",
        api_key=DEFAULT_KEY,
        role="OWNER",
    )
    return named


def test_the_environment_key_wins_over_both_files(both_files, monkeypatch):
    monkeypatch.setenv("WHATLEAD_CREDENTIALS", both_files)
    monkeypatch.setenv("WHATLEAD_API_KEY", API_KEY)

    assert (credentials().api_key, credentials().source) == (API_KEY, "WHATLEAD_API_KEY")


def test_the_named_file_wins_over_the_working_directorys(both_files, monkeypatch):
    monkeypatch.setenv("WHATLEAD_CREDENTIALS", both_files)

    found = credentials()

    assert (found.api_key, found.organization_id, found.role) == (FILE_KEY, "org-f", "ADMIN")
    assert found.source == f"WHATLEAD_CREDENTIALS={both_files}"


def test_make_runs_file_under_the_working_directory_is_the_last_resort(both_files):
    found = credentials()

    assert (found.api_key, found.organization_id, found.role) == (DEFAULT_KEY, "org-d", "OWNER")
    assert found.source == ".data/credentials.json"


def test_no_key_anywhere_says_where_to_put_one(no_credentials):
    with pytest.raises(SystemExit) as exit:
        credentials()

    message = str(exit.value.code)
    assert "\n" not in message and message.startswith("error: no API key")
    assert "WHATLEAD_API_KEY" in message and "WHATLEAD_CREDENTIALS" in message


def test_a_named_file_that_is_missing_is_not_silently_replaced_by_the_default(both_files, monkeypatch):
    monkeypatch.setenv("WHATLEAD_CREDENTIALS", "/nonexistent/creds.json")

    with pytest.raises(SystemExit, match=r"credentials file not found \(WHATLEAD_CREDENTIALS=/nonexistent"):
        credentials()


@pytest.mark.parametrize("content", ["not json", "[]", '{"organization_id": "o"}', '{"api_key": "  "}'])
def test_a_file_without_a_key_is_one_line_naming_it(no_credentials, content):
    (no_credentials / ".data").mkdir()
    (no_credentials / ".data" / "credentials.json").write_text(content)

    with pytest.raises(
        SystemExit, match=r'^error: the credentials file has no "api_key" \(.data/credentials.json\)$'
    ):
        credentials()


async def test_a_command_without_a_key_fails_in_one_line_and_calls_nothing(ops, whatlead):
    code, out, err = await whatlead("controls")

    assert code == 1 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: no API key")
    assert ops.calls == []


async def test_the_key_of_the_file_is_sent_as_bearer(ops, whatlead, no_credentials):
    write(
        no_credentials / ".data" / "credentials.json",
        organization_id="org-d",
        api_key=DEFAULT_KEY,
        role="OWNER",
    )

    code, _, err = await whatlead("plan")

    assert code == 0, err
    [call] = ops.calls
    assert call.metadata["authorization"] == f"Bearer {DEFAULT_KEY}"
    assert call.request.organization_id == ""  # the server takes it from the key
