"""The loopback site server behind `newsdesk demo` and the tests."""

from __future__ import annotations

import socket

import pytest

from flows.siteserver import LoopbackServer, Response


def test_a_client_hanging_up_mid_response_prints_no_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    big = b"<html><body>" + b"x" * (8 << 20) + b"</body></html>"
    with LoopbackServer(lambda path, headers: Response(200, big, {"Content-Type": "application/octet-stream"})) as srv:
        for _ in range(5):  # read a little, then hang up with the server still writing
            with socket.create_connection(("127.0.0.1", srv.port)) as sock:
                sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                assert sock.recv(4096).startswith(b"HTTP/1.1 200")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        with socket.create_connection(("127.0.0.1", srv.port)) as sock:  # still serving
            sock.sendall(b"GET /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert sock.recv(64).startswith(b"HTTP/1.1 200")
    assert "Traceback" not in capfd.readouterr().err


def test_other_errors_in_the_server_still_print_a_traceback(capfd: pytest.CaptureFixture[str]) -> None:
    with LoopbackServer() as srv:
        try:
            raise ValueError("a real bug")
        except ValueError:
            srv._httpd.handle_error(None, ("127.0.0.1", 1))
        try:
            raise BrokenPipeError("the client left")
        except BrokenPipeError:
            srv._httpd.handle_error(None, ("127.0.0.1", 2))
    err = capfd.readouterr().err
    assert "ValueError: a real bug" in err
    assert "BrokenPipeError" not in err
