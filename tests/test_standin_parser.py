"""The stand-in's HTTP/1.1 request parser, case by case and against h11 as the oracle."""

from __future__ import annotations

import re

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pywats_client.standin._parser import HttpError, ParsedRequest, RequestParser

MAX_HEADER = 8192
MAX_BODY = 1000
_CHUNKED = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"


def parser() -> RequestParser:
    return RequestParser(max_header_bytes=MAX_HEADER, max_body=MAX_BODY)


def parse_all(data: bytes, *, split: int | None = None, eof: bool = True) -> list[ParsedRequest]:
    """Every request in ``data``, fed whole or ``split`` bytes at a time."""
    p = parser()
    out: list[ParsedRequest] = []
    pieces = [data] if not split else [data[i : i + split] for i in range(0, len(data), split)]
    for piece in pieces:
        p.feed(piece)
        while (request := p.next_request()) is not None:
            out.append(request)
    if eof:
        p.feed(b"")
        while (request := p.next_request()) is not None:
            out.append(request)
    return out


def error_of(data: bytes) -> HttpError:
    with pytest.raises(HttpError) as caught:
        parse_all(data)
    return caught.value


def test_leading_zeros_in_content_length() -> None:
    (request,) = parse_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0003\r\n\r\nabc")
    assert request.body == b"abc"


def test_simple_get() -> None:
    (request,) = parse_all(b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Y:  z \r\n\r\n")
    assert (request.method, request.target, request.version) == ("GET", "/a?b=1", "1.1")
    assert request.headers == {"host": "x", "x-y": "z"}
    assert request.body == b""
    assert request.keep_alive


def test_content_length_body_and_pipelining_split_anywhere() -> None:
    one = b"POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
    two = b"GET /v HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    for split in (None, 1, 2, 7, 50):
        first, second = parse_all(one + two, split=split)
        assert first.body == b"hello"
        assert (second.target, second.keep_alive) == ("/v", False)


def test_chunked_body_with_extensions_and_trailers() -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    )
    for split in (None, 1, 3):
        (request,) = parse_all(data, split=split)
        assert request.body == b"abc0123456789"


def test_http_1_0_closes_and_needs_no_host() -> None:
    (request,) = parse_all(b"GET / HTTP/1.0\r\n\r\n")
    assert not request.keep_alive


def test_bare_lf_and_leading_empty_lines_are_tolerated() -> None:
    (request,) = parse_all(b"\r\n\r\nGET / HTTP/1.1\nHost: x\n\n")
    assert request.headers == {"host": "x"}


def test_repeated_headers_are_joined() -> None:
    (request,) = parse_all(b"GET / HTTP/1.1\r\nHost: x\r\nA: 1\r\nA: 2\r\n\r\n")
    assert request.headers["a"] == "1, 2"


def test_expect_continue_is_flagged_once_until_the_body_comes() -> None:
    p = parser()
    p.feed(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
    assert p.next_request() is None
    assert p.wants_continue
    p.wants_continue = False
    p.feed(b"ok")
    request = p.next_request()
    assert request is not None and request.body == b"ok"
    assert not p.wants_continue


def test_clean_eof_between_requests_is_not_an_error() -> None:
    p = parser()
    p.feed(b"")
    assert p.next_request() is None
    assert p.at_eof and p.idle


@pytest.mark.parametrize(
    ("data", "status", "text"),
    [
        (b"GARBAGE\r\n\r\n", 400, "malformed request line"),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, "HTTP/2.0 is not supported"),
        (b"GET / HTTP/1.1\r\n\r\n", 400, "missing Host"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nbad line\r\n\r\n", 400, "malformed header line"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, "more than one Host"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n", 400, "malformed header line"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nA: \x01\r\n\r\n", 400, "control character"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, "bad Content-Length"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n", 400, "bad Content-Length"),
        (
            _CHUNKED.replace(b"Host: x\r\n", b"Host: x\r\nContent-Length: 1\r\n"),
            400,
            "both Transfer-Encoding and Content-Length",
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "gzip"),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n", 413, "1000 bytes"),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
            413,
            "1000",
        ),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xb2\r\n\r\n", 400, "bad Content-Length"),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3E9\r\n",
            413,
            "1000 bytes",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            400,
            "malformed chunk size",
        ),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nab\r\n",
            400,
            "longer than its chunk size",
        ),
        (_CHUNKED + b"0 \r\n\r\n", 400, "malformed chunk size"),
        (_CHUNKED + b"1\nx\r\n0\r\n\r\n", 400, "must end with CRLF"),
        (_CHUNKED + b"0\r\nX: \x00\r\n\r\n", 400, "control character"),
        (_CHUNKED + b"0\r\nno colon\r\n\r\n", 400, "malformed header line"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"a" * MAX_HEADER + b"\r\n\r\n", 431, "headers"),
        (b"GET / HTTP/1.1\r\nHost: x\r\nA: " + b"a" * MAX_HEADER, 431, "headers"),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabc",
            400,
            "middle of a request body",
        ),
        (b"GET / HTTP/1.1\r\nHost", 400, "middle of a request head"),
        (b"GET /\xff HTTP/1.1\r\nHost: x\r\n\r\n", 400, "malformed request line"),
    ],
)
def test_bad_requests_are_refused_with_the_right_status(
    data: bytes, status: int, text: str
) -> None:
    error = error_of(data)
    assert error.status == status
    assert text in str(error)


# --- against h11 ---------------------------------------------------------------------------


Parsed = list[tuple[str, str, dict[str, str], bytes]]


def h11_parse(data: bytes) -> tuple[Parsed, bool]:
    """The requests h11 reads from ``data`` as a server, and whether it then refused the rest."""
    conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEADER)
    conn.receive_data(data)
    conn.receive_data(b"")
    out: Parsed = []
    head: h11.Request | None = None
    body = b""
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.Request):
                head, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                headers: dict[str, str] = {}
                for name, value in head.headers:
                    key, text = name.decode(), value.decode("latin-1")
                    headers[key] = f"{headers[key]}, {text}" if key in headers else text
                out.append((head.method.decode(), head.target.decode(), headers, body))
                conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                conn.send(h11.EndOfMessage())
                if conn.our_state is h11.MUST_CLOSE:
                    return out, False
                conn.start_next_cycle()
            else:  # NEED_DATA, PAUSED or ConnectionClosed: nothing more to read
                return out, False
    except h11.RemoteProtocolError:
        return out, True


def _as_h11(r: ParsedRequest) -> tuple[str, str, dict[str, str], bytes]:
    headers = dict(r.headers)
    if "transfer-encoding" in headers:  # h11 lower-cases this value
        headers["transfer-encoding"] = headers["transfer-encoding"].lower()
    return (r.method, r.target, headers, r.body)


def ours(data: bytes, split: int) -> tuple[Parsed, bool]:
    """The requests we read from ``data`` fed in pieces, and whether we refused the rest."""
    p = parser()
    out: Parsed = []
    try:
        for i in range(0, len(data), split):
            p.feed(data[i : i + split])
            while (r := p.next_request()) is not None:
                out.append(_as_h11(r))
                if not r.keep_alive:
                    return out, False
        p.feed(b"")
        while (r := p.next_request()) is not None:
            out.append(_as_h11(r))
    except HttpError:
        return out, True
    return out, False


_names = st.sampled_from(["Accept", "X-A", "Content-Type", "User-Agent", "Connection"])
_values = st.text(alphabet="abcXYZ019 -/;=,.", max_size=12).map(str.strip)


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
    target = draw(st.sampled_from(["/", "/api/Report/WSJF", "/a?b=c&d=%20", "*"]))
    headers = [("Host", "x"), *draw(st.lists(st.tuples(_names, _values), max_size=4))]
    headers = [(n, v) for n, v in headers if n != "Connection" or v in ("close", "keep-alive")]
    body = draw(st.binary(max_size=60))
    framing = draw(st.sampled_from(["length", "chunked", "none"]))
    if framing == "length":
        headers.append(("Content-Length", str(len(body))))
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        cuts = sorted(draw(st.lists(st.integers(0, len(body)), max_size=3)))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"
    else:
        body = b""
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers)
    return head.encode() + b"\r\n" + body


@settings(max_examples=300, deadline=None)
@given(st.lists(requests(), min_size=1, max_size=3), st.integers(1, 40))
def test_valid_requests_parse_like_h11(batch: list[bytes], split: int) -> None:
    data = b"".join(batch)
    expected = h11_parse(data)
    assert not expected[1]
    assert ours(data, split) == expected


@settings(max_examples=500, deadline=None)
@given(requests(), st.integers(0, 200), st.binary(min_size=0, max_size=3), st.integers(1, 40))
def test_mutated_requests_are_never_read_where_h11_refuses(
    data: bytes, where: int, junk: bytes, split: int
) -> None:
    where = min(where, len(data))
    mutated = data[:where] + junk + data[where + len(junk) :]
    mine, _ = ours(mutated, split)
    # RFC 9112 2.2 lets a server skip empty lines before a request line; h11 does not.
    theirs, _ = h11_parse(re.sub(rb"\A(?:\r?\n)+", b"", mutated))
    # Every request we read, h11 reads the same way (we may refuse more, never less).
    assert mine == theirs[: len(mine)]
    assert len(mine) <= len(theirs)
