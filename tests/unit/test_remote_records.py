"""Tables for the relay's pure records: request validation, argv, output records, chunking."""

from __future__ import annotations

import pytest

from fleetd.errors import InvalidInput
from fleetd.model import remote
from fleetd.model.remote import ExecRequest, Output, cut, decode_output, decode_request, make_request


@pytest.mark.parametrize("args, argv", [
    (("status", "a.service"), ("systemctl", "status", "-l", "--no-pager", "--", "a.service")),
    (("restart", "a.service"), ("systemctl", "restart", "--", "a.service")),
    (("journal", "a.service"), ("journalctl", "--unit=a.service", "--no-pager", "-n", "10",
                                "-o", "short")),
    (("journal", "a@1.service", 0, True, "json"),
     ("journalctl", "--unit=a@1.service", "--no-pager", "-n", "0", "-o", "json", "-f")),
])
def test_argv(args, argv):
    assert make_request(*args).argv() == argv


@pytest.mark.parametrize("args, message", [
    (("shell", "a.service"), 'invalid kind "shell"'),
    (("status", "a.bogus"), 'invalid unit type: "bogus"'),
    (("status", "a;b.service"), "invalid character"),
    (("journal", "a.service", -1), "lines: expected a whole number"),
    (("journal", "a.service", 10001), "lines: expected a whole number"),
    (("journal", "a.service", True), "lines: expected a whole number"),
    (("journal", "a.service", "5"), "lines: expected a whole number"),
    (("journal", "a.service", 5, "yes"), "follow: expected true or false"),
    (("journal", "a.service", 5, False, "--all"), 'output: invalid mode "--all"'),
    (("status", "a.service", 5, True), "follow: only the journal"),
])
def test_invalid_requests(args, message):
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        make_request(*args)


def test_request_round_trip_and_strict_decoding():
    request = make_request("journal", "a.service", 7, True, "cat")
    assert decode_request(request.encode()) == request
    for text in ("nope", "[]", '{"kind":"status","unit":"a.service"}',
                 request.encode().replace('"cat"', '"evil"')):
        with pytest.raises(InvalidInput):
            decode_request(text)
    assert isinstance(request, ExecRequest)


@pytest.mark.parametrize("query, typed", [
    ((None, None, None), (10, False, "short")),
    (("0", "true", "cat"), (0, True, "cat")),
    (("25", "0", None), (25, False, "short")),
    (("25", "", None), (25, False, "short")),
])
def test_journal_query(query, typed):
    assert remote.journal_query(*query) == typed


@pytest.mark.parametrize("query", [("x", None, None), ("1e3", None, None), (None, "maybe", None),
                                   ("10001", None, None)])
def test_bad_journal_query(query):
    with pytest.raises(InvalidInput):
        remote.journal_query(*query)


@pytest.mark.parametrize("output", [Output(started=True), Output(data="x\n"), Output(exit=3),
                                    Output(data="")])
def test_output_round_trip(output):
    assert decode_output(output.encode()) == output


@pytest.mark.parametrize("text", ['{"exit":"3"}', '{"data":1}', '{"data":"a","exit":1}', "[]", "x"])
def test_bad_output_records(text):
    with pytest.raises(InvalidInput):
        decode_output(text)


@pytest.mark.parametrize("data, limit, chunks", [
    (b"", 4, []),
    (b"abcdefghij", 4, ["abcd", "efgh", "ij"]),
    ("aé€b".encode(), 3, ["aé", "€", "b"]),  # never splits a character
    ("€€".encode(), 4, ["€", "€"]),
])
def test_cut(data, limit, chunks):
    assert cut(data, limit) == chunks
    assert "".join(cut(data, limit)) == data.decode()


def test_seq_names_sort_in_write_order():
    names = [remote.seq_name(n) for n in (0, 9, 10, 100, 12345)]
    assert names == sorted(names)
