"""``tconv serve``'s JSON API, over HTTP on 127.0.0.1 (an in-process server on an ephemeral port): every endpoint,
the same answers as ``tconv explain --json`` / ``translate --json``, the numbers against the naive oracle, the bad
requests (a 4xx with a message, never a 500, the server still up), the page's files, and a small bounded load.
The browser tests are in ``test_serve_browser.py``; the full load test is ``benchmarks/serve_load.py``."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
import urllib.parse

import numpy as np
import pytest

from oracle import naive_conv_transpose
from tconv.tools.cli import main
from tconv.tools.serve import LIMITS, MAX_URL, make_server

SEED004_X = [[-67, -77], [-117, -127]]
SEED004_W = [[-1, 2, -3], [4, -5, 6], [-7, 8, -9]]
# Seed 004: the 25 values tf.nn.conv2d_transpose printed (output_shape (1, 5, 5, 1), VALID, stride 2), row by row.
SEED004_Y = [
    [67, -134, 278, -154, 231],
    [-268, 335, -710, 385, -462],
    [586, -770, 1620, -870, 1074],
    [-468, 585, -1210, 635, -762],
    [819, -936, 1942, -1016, 1143],
]


@pytest.fixture(scope="module")
def server():
    srv = make_server(0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def request(server, path, method="GET", body=None, headers=None):
    """(status, headers, parsed JSON or bytes) of one request on a fresh connection."""
    host, port = server.server_address[:2]
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        data = response.read()
        kind = response.getheader("Content-Type", "")
        parsed = json.loads(data) if kind.startswith("application/json") and method != "HEAD" else data
        return response.status, response, parsed
    finally:
        connection.close()


def api(server, endpoint, **options):
    query = urllib.parse.urlencode({k.replace("_", "-"): v for k, v in options.items()})
    return request(server, f"/api/{endpoint}?{query}")


def test_listens_on_loopback_only(server):
    assert server.server_address[0] == "127.0.0.1"
    assert server.url.startswith("http://127.0.0.1:")


def test_meta(server):
    status, _, body = api(server, "meta")
    assert status == 200
    assert body["frameworks"] == ["tconv", "torch", "tensorflow", "keras", "onnx", "jax", "paddle"]
    assert set(body["padding_meanings"]) == set(body["frameworks"])
    assert body["default_padding"]["keras"] == "valid" and body["default_padding"]["torch"] == 0
    assert body["limits"]["draw_output_elements"] == LIMITS["draw_output_elements"]


CLI_CASES = [
    ["--input", "7x7", "--kernel", "5", "--stride", "2", "--padding", "same", "--framework", "keras"],
    ["--input", "2x2", "--kernel", "3", "--stride", "2", "--padding", "valid", "--framework", "tensorflow"],
    ["--input", "5", "--kernel", "3", "--stride", "2", "--padding", "1", "--output-padding", "1"],
    ["--input", "4x4x4", "--kernel", "3", "--stride", "2", "--padding", "1", "--framework", "onnx", "--groups", "2"],
    [
        "--input",
        "7",
        "--kernel",
        "5",
        "--stride",
        "2",
        "--padding",
        "same",
        "--framework",
        "tensorflow",
        "--output-size",
        "13",
        "--in-channels",
        "4",
        "--out-channels",
        "6",
    ],
    [
        "--input",
        "9x9",
        "--kernel",
        "3",
        "--stride",
        "2",
        "--dilation",
        "2",
        "--padding",
        "1:2,0:1",
        "--framework",
        "tconv",
    ],
    ["--input", "8", "--kernel", "3", "--stride", "2", "--padding", "1", "--conv"],
]


def _query(argv):
    """The command's options as a query: ``--output-size 13`` -> ``output-size=13``, ``--conv`` -> ``conv=1``."""
    options, i = {}, 0
    while i < len(argv):
        name = argv[i].removeprefix("--")
        if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            options[name], i = argv[i + 1], i + 2
        else:
            options[name], i = "1", i + 1
    return options


@pytest.mark.parametrize("argv", CLI_CASES, ids=lambda a: " ".join(a))
def test_explain_and_translate_answer_what_the_command_prints(server, argv, capsys):
    for command in ("explain", "translate"):
        assert main([command, *argv, "--json"]) == 0
        printed = json.loads(capsys.readouterr().out)
        printed.pop("figures", None)
        status, _, body = api(server, command, **_query(argv))
        assert status == 200, body
        assert body == printed


def test_explain_accepts_underscores_and_the_framework_default_padding(server):
    _, _, hyphen = api(server, "explain", input="7", kernel="3", stride="2", **{"output-padding": "1"})
    status, _, underscore = request(server, "/api/explain?input=7&kernel=3&stride=2&output_padding=1")
    assert status == 200 and underscore == hyphen and underscore["output_size"] == [16]
    status, _, keras = api(server, "explain", input="7", kernel="5", stride="2", framework="keras")
    assert status == 200 and keras["padding"] == [[0, 0]] and keras["output_size"] == [17]  # Keras's 'valid'


def test_steps_reproduce_seed_004(server):
    status, _, body = api(
        server,
        "steps",
        input="2x2",
        kernel="3",
        stride="2",
        padding="valid",
        framework="tensorflow",
        x=json.dumps(SEED004_X),
        w=json.dumps(SEED004_W),
    )
    assert status == 200, body
    assert body["output"] == SEED004_Y
    assert body["output"][0] == [67, -134, 278, -154, 231]
    # The scatter: 4 stamps of 9 taps, 2 apart; after the last one every touched cell holds the full output.
    assert [step["origin"] for step in body["scatter"]] == [[0, 0], [0, 2], [2, 0], [2, 2]]
    assert body["scatter"][0]["products"][0] == 67 and body["scatter"][0]["value"] == -67
    final = {}
    for step in body["scatter"]:
        for cell, total in zip(step["cells"], step["sums"]):
            final[tuple(cell)] = total
    assert all(final[(r, c)] == SEED004_Y[r][c] for r in range(5) for c in range(5))
    # The gather: one zero between inputs, padding 2 on each side, the kernel flipped.
    assert body["zeros_between"] == [1, 1] and body["spread_padding"] == [[2, 2], [2, 2]]
    assert body["flipped"][0] == [-9, 8, -7]
    assert body["spread_kind"][2] == [0, 0, 2, 1, 2, 0, 0] and body["spread_kind"][3][2] == 1
    assert body["spread"][2][2:5] == [-67, 0, -77]
    assert [sum(step["products"]) for step in body["gather"]] == [v for row in SEED004_Y for v in row]


STEP_CASES = [
    dict(input="7x7", kernel="5", stride="2", padding="same", framework="keras"),
    dict(input="5", kernel="3", stride="2", padding="1", output_padding="1", framework="torch"),
    dict(input="4x4", kernel="3", stride="2", dilation="2", padding="2", output_padding="1", framework="torch"),
    dict(input="3", kernel="1", padding="1", framework="torch"),  # padding beyond the kernel: the spread is cropped
    dict(input="3x3x3", kernel="3", stride="2", padding="1", output_padding="1", framework="torch"),
    dict(input="4x5", kernel="2x3", stride="3x2", padding="0:2,1:0", output_padding="2x1", framework="tconv"),
]


@pytest.mark.parametrize("case", STEP_CASES, ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
@pytest.mark.parametrize("values", ["count", "random"])
def test_steps_agree_with_the_oracle(server, case, values):
    status, _, explained = api(server, "explain", **case)
    assert status == 200, explained
    status, _, body = api(server, "steps", x=values, w=values, seed="3", **case)
    assert status == 200, body
    x, w = np.array(body["x"], float), np.array(body["w"], float)
    assert x.shape == tuple(explained["input_size"]) and w.shape == tuple(explained["kernel_size"])
    expected = naive_conv_transpose(
        x[None, None],
        w[None, None],
        stride=explained["stride"],
        pads=explained["padding"],
        output_padding=explained["output_padding"],
        dilation=explained["dilation"],
    )[0, 0]
    np.testing.assert_allclose(body["output"], expected)
    assert list(np.shape(body["output"])) == explained["output_size"]
    # Each gather step's products add up to its output element; the scatter's last sums are the full output.
    for step in body["gather"]:
        assert sum(step["products"]) == pytest.approx(step["value"])
        assert step["value"] == pytest.approx(expected[tuple(step["index"])])
    canvas = np.array(body["canvas"], float)
    inside = tuple(slice(lo, hi) for lo, hi in body["crop"])
    np.testing.assert_allclose(canvas[inside], expected)
    last = {}
    for step in body["scatter"]:
        last.update({tuple(c): s for c, s in zip(step["cells"], step["sums"])})
    for cell, total in last.items():
        assert canvas[cell] == pytest.approx(total)


def test_taps_count_the_kernel_taps_in_every_dimension(server):
    status, _, body = api(server, "taps", input="4x4x4", kernel="3", stride="2", padding="1", output_padding="1")
    assert status == 200
    expected = naive_conv_transpose(
        np.ones((1, 1, 4, 4, 4)), np.ones((1, 1, 3, 3, 3)), stride=[2] * 3, pads=[(1, 1)] * 3, output_padding=[1] * 3
    )[0, 0]
    np.testing.assert_array_equal(body["taps"], expected)
    assert body["max"] == 8 and body["min"] == 1 and body["even"] is False  # issue 18: the 3-D centre gets 8
    _, _, even = api(server, "taps", input="4x4", kernel="4", stride="2", padding="2")
    assert even["even"] is True and even["min"] == even["max"] == 4  # kernel divisible by the stride, edges cropped


def test_matrix_transposed_is_the_layer(server):
    status, _, body = api(
        server, "matrix", input="2x2", kernel="3", stride="2", x=json.dumps(SEED004_X), w=json.dumps(SEED004_W)
    )
    assert status == 200
    assert (body["rows"], body["columns"]) == (4, 25) and body["nonzeros"] == 36
    C = np.array(body["C"], float)
    assert C.shape == (4, 25)
    np.testing.assert_allclose(C.T @ np.ravel(SEED004_X), np.ravel(SEED004_Y))
    assert body["CT_x"] == body["output"] == [v for row in SEED004_Y for v in row] and body["equal"] is True
    assert C[0].reshape(5, 5)[:3, :3].tolist() == SEED004_W  # row 0: the kernel where input (0, 0) stamps it


BAD = [
    # (path, status, a fragment of the message)
    ("/api/explain?kernel=3", 400, "'input' is required"),
    ("/api/explain?input=abc&kernel=3", 400, "sizes like 7"),
    ("/api/explain?input=7x7x7x7&kernel=3", 400, "1 to 3 axes"),
    ("/api/explain?input=-3&kernel=3", 400, "between 0 and"),
    ("/api/explain?input=0&kernel=3", 400, "positive"),
    ("/api/explain?input=99999999&kernel=3", 400, "between 0 and"),
    ("/api/explain?input=7&kernel=3&stride=0", 400, "stride"),
    ("/api/explain?input=7&kernel=3&stride=2&output-padding=5", 400, "output_padding"),
    ("/api/explain?input=7&kernel=3&padding=sideways", 400, "padding must be"),
    ("/api/explain?input=7&kernel=3&padding=1:2:3", 400, "padding must be"),
    ("/api/explain?input=7&kernel=9&stride=2&padding=20", 400, "crops the whole output"),
    ("/api/explain?input=7&kernel=3&framework=keras&padding=2", 400, "Keras takes padding"),
    ("/api/explain?input=7&kernel=3&framework=caffe", 400, "framework must be one of"),
    ("/api/explain?input=7&kernel=3&groups=2&in-channels=3", 400, "groups must divide"),
    ("/api/explain?input=7&kernel=3&groups=x", 400, "whole number"),
    ("/api/explain?input=7x7&kernel=3x3x3", 400, "kernel_size"),
    ("/api/explain?input=7&kernel=3&conv=maybe", 400, "conv must be"),
    ("/api/explain?input=7&kernel=3&colour=red", 400, "unknown option 'colour'"),
    ("/api/explain?input=7&input=8&kernel=3", 400, "more than once"),
    ("/api/explain?input=7&kernel=101x101", 422, "too large to explain"),
    ("/api/steps?input=100x100&kernel=3", 422, "too large to draw"),
    ("/api/steps?input=20x20&kernel=9&stride=3", 422, "too large to draw"),
    ("/api/steps?input=8&kernel=3&conv=1", 400, "transposed convolutions"),
    ("/api/steps?input=2&kernel=3&x=[1,2,3]", 400, "shape of the input"),
    ("/api/steps?input=2&kernel=3&w=[[1,2]]", 400, "shape of the kernel"),
    ("/api/steps?input=2&kernel=3&x=hello", 400, "JSON array"),
    ("/api/steps?input=2&kernel=3&x=[1,NaN]", 400, "finite"),
    ("/api/steps?input=2&kernel=3&x=[1,1e300]", 400, "finite numbers of magnitude"),
    ("/api/steps?input=2&kernel=3&x=[[1,2],[3]]", 400, "JSON array"),
    ("/api/taps?input=80x80&kernel=3", 422, "too large to draw"),
    ("/api/matrix?input=16x16&kernel=3&stride=2", 422, "matrix C is 256 x"),
    ("/api/matrix?input=2&kernel=3&seed=-1", 400, "seed must be"),
    ("/api/meta?input=7", 400, "unknown option"),
    ("/api/nothing", 404, "no endpoint"),
    ("/nothing", 404, "no page"),
]


@pytest.mark.parametrize(("path", "status", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_a_4xx_with_a_message(server, path, status, fragment):
    got, response, body = request(server, path)
    assert got == status, body
    assert response.getheader("Content-Type").startswith("application/json")
    assert fragment in body["error"]


def test_other_methods_long_urls_and_bodies_are_refused(server):
    status, _, body = request(server, "/api/explain?input=7&kernel=3", method="POST", body=b"{}")
    assert status == 405 and "use GET" in body["error"]
    status, _, body = request(server, "/api/explain?input=7&kernel=3&x=" + "1" * MAX_URL)
    assert status == 414 and "longer than" in body["error"]
    status, _, body = request(server, "/api/explain?input=7&kernel=3", body=b"xx", headers={"Content-Length": "2"})
    assert status == 400 and "no body" in body["error"]
    status, response, _ = request(server, "/api/explain?input=7&kernel=3", method="HEAD")
    assert status == 200 and int(response.getheader("Content-Length")) > 0


def test_garbage_never_crashes_the_server(server):
    rng = np.random.default_rng(0)
    alphabet = [*"0123456789x:,-_=&?%[]{}.eE+ samevlidorch", "%00", "%ff", "%", "\u00e9"]
    options = [
        "input",
        "kernel",
        "stride",
        "padding",
        "output-padding",
        "output-size",
        "dilation",
        "groups",
        "in-channels",
        "out-channels",
        "framework",
        "conv",
        "x",
        "w",
        "seed",
    ]
    for _ in range(150):
        endpoint = rng.choice(["explain", "translate", "steps", "taps", "matrix"])
        parts = []
        for name in rng.choice(options, size=rng.integers(1, 6), replace=False):
            value = "".join(rng.choice(alphabet, size=rng.integers(0, 8)))
            parts.append(f"{name}={urllib.parse.quote(value, safe='%')}")
        status, _, body = request(server, f"/api/{endpoint}?input=3&kernel=2&" + "&".join(parts))
        assert status in (200, 400, 404, 422), (status, parts, body)
        assert status == 200 or body["error"]
    assert api(server, "meta")[0] == 200  # still serving


def test_the_page_and_its_files(server):
    status, response, page = request(server, "/")
    assert status == 200 and response.getheader("Content-Type").startswith("text/html")
    assert b"tconv explorer" in page and b"/explorer.js" in page and b"/explorer.css" in page
    for path, kind in (("/explorer.js", "text/javascript"), ("/explorer.css", "text/css")):
        status, response, data = request(server, path)
        assert status == 200 and response.getheader("Content-Type").startswith(kind) and len(data) > 1000
    for path in ("/", "/explorer.js", "/explorer.css"):
        data = request(server, path)[2].decode()
        # Nothing is fetched from elsewhere: no absolute URL, no CDN.
        assert "http://" not in data and "https://" not in data and "//cdn" not in data
    assert request(server, "/favicon.ico")[0] == 204


def test_concurrent_clients_all_succeed(server):
    """A bounded load (200 requests from 10 clients on keep-alive connections): no failed request."""
    host, port = server.server_address[:2]
    paths = [
        "/api/explain?input=7x7&kernel=5&stride=2&padding=same&framework=keras",
        "/api/translate?input=7&kernel=3&stride=2&padding=1",
        "/api/taps?input=7x7&kernel=5&stride=2&padding=2",
        "/api/steps?input=2x2&kernel=3&stride=2",
        "/api/explain?input=abc&kernel=3",  # a refused request is an answered one
    ]
    failures, latencies, lock = [], [], threading.Lock()

    def client(number):
        connection = http.client.HTTPConnection(host, port, timeout=30)
        for i in range(20):
            path = paths[(number + i) % len(paths)]
            start = time.perf_counter()
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
                ok = response.status == (400 if "abc" in path else 200)
            except OSError as err:
                ok, response = False, err
            with lock:
                latencies.append(time.perf_counter() - start)
                if not ok:
                    failures.append((path, response))
        connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert len(latencies) == 200
    print(f"200 requests, median {statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")


def test_the_command_refuses_a_bad_or_busy_port(server, capsys):
    with pytest.raises(SystemExit) as exit_status:
        main(["serve", "--port", "70000"])
    assert exit_status.value.code == 2 and "--port" in capsys.readouterr().err
    busy = server.server_address[1]
    assert main(["serve", "--port", str(busy)]) == 2
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
