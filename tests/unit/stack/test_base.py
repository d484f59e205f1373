from __future__ import annotations

import socket

import pytest

from deploy.local.base import format_table, free_port, parse_env, port_is_free, render_env
from deploy.local.exceptions import PortInUseError, StackError


def test_env_round_trip_sorted_and_commented() -> None:
    values = {"SLUICE_B": "2", "SLUICE_A": "x=y"}
    text = render_env(values)
    assert text.splitlines()[0].startswith("#")
    assert text.splitlines()[1:] == ["SLUICE_A=x=y", "SLUICE_B=2"]
    assert parse_env(text) == values


def test_render_env_refuses_foreign_keys_and_multiline_values() -> None:
    with pytest.raises(StackError, match="must start with SLUICE_"):
        render_env({"AWS_SECRET_ACCESS_KEY": "x"})
    with pytest.raises(StackError, match="one line"):
        render_env({"SLUICE_X": "a\nb"})


def test_parse_env_names_the_bad_line_and_strips_quotes() -> None:
    assert parse_env('SLUICE_X="quoted"\n\n# c\n') == {"SLUICE_X": "quoted"}
    with pytest.raises(StackError, match="line 2"):
        parse_env("SLUICE_OK=1\nnot a setting\n")


def test_port_checks_see_a_listening_socket() -> None:
    port = free_port()
    assert port_is_free("127.0.0.1", port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        assert not port_is_free("127.0.0.1", port)


def test_port_in_use_error_names_port_and_setting() -> None:
    err = PortInUseError("kafka", "127.0.0.1", 19092, "SLUICE_STACK_KAFKA_PORT")
    assert "19092" in str(err) and "SLUICE_STACK_KAFKA_PORT" in str(err)
    assert err.code == "port_in_use" and not err.retryable


def test_format_table_aligns_columns() -> None:
    out = format_table(["a", "bb"], [["xxx", "y"]]).splitlines()
    assert out[0] == "a    bb"
    assert out[2] == "xxx  y "
