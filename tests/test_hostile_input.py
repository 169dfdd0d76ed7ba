"""Hostile and careless input, each case the input that once broke sweepd: one line, the right exit
code, nothing stored, and never a traceback or unbounded memory."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import socket
import string
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from support import run_record, run_sweepd
from sweepd.agent.cli.parts import table
from sweepd.queue.config import load_config, parse_text, validate
from sweepd.queue.errors import ConfigError, InvalidId
from sweepd.queue.ids import ID_RE, check_id, host_part, new_id
from sweepd.queue.parsing import MAX_CONFIG_BYTES, MAX_DEPTH, MAX_EXPANDED
from sweepd.queue.records import Claim
from sweepd.queue.store import Store

HEAD = "method: grid\nprogram: train.py\nparameters:\n  x: {values: [1, 2]}\n"


def snapshot(r: redis.Redis) -> dict[bytes, Any]:
    return {k: r.dump(k) for k in r.keys("*")}


def one_line(done: Any, code: int) -> str:
    """The one ``sweepd: error:`` line a refused command prints, with its exit code checked."""
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith("sweepd: error: ")
    return str(line)


def laughs(levels: int, fanout: int = 9) -> str:
    """The "billion laughs": each level an alias list of the one before, in keys sweepd ignores."""
    lines = ['lol0: &lol0 "lol"']
    for i in range(1, levels):
        lines.append(f"lol{i}: &lol{i} [{', '.join([f'*lol{i - 1}'] * fanout)}]")
    return HEAD + "\n".join(lines) + "\n"


def nested_json(depth: int) -> str:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return json.dumps({"method": "grid", "program": "train.py", "parameters": {"x": {"value": value}}})


# --- sweep files: size, depth, aliases, through `sweepd sweep create` -----------------------------------


@pytest.mark.parametrize(
    ("name", "text", "says"),
    [
        ("bomb.yaml", laughs(10), "with its YAML aliases expanded"),
        ("deep.json", nested_json(300), f"nested deeper than {MAX_DEPTH} levels"),
        ("deep.yaml", "{a: " * 5000, f"line 1, column {4 * (MAX_DEPTH) + 1}: nested deeper than {MAX_DEPTH}"),
        ("deeplist.yaml", "[" * 5000, f"nested deeper than {MAX_DEPTH} levels"),
        ("date.yaml", HEAD + "description: 2001-13-01\n", "line 5, column 14: cannot read '2001-13-01' as a YAML"),
        ("digits.yaml", HEAD + "run_cap: " + "1" * 5000 + "\n", "line 5, column 10: cannot read '111"),
        ("int.yaml", HEAD + "run_cap: !!int\n", "line 5, column 10: cannot read '' as a YAML int"),
        ("digits.json", '{"method": "grid", "run_cap": ' + "1" * 5000 + "}", "not valid JSON: Exceeds the limit"),
    ],
)
def test_a_hostile_sweep_file_is_one_line_exit_2_and_nothing_stored(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis, name: str, text: str, says: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    before = snapshot(r)
    started = time.monotonic()
    line = one_line(run_sweepd("sweep", "create", str(path), env=cli_env), 2)
    assert time.monotonic() - started < 30  # the bomb once ran for minutes and took 2.1 GB
    assert line.startswith(f"sweepd: error: {path}: ") and says in line, line
    assert snapshot(r) == before


@pytest.mark.parametrize(("name", "padded"), [("big.json", True), ("big.yaml", True), ("valid.json", False)])
def test_a_file_over_1_mib_is_refused_without_reading_it_all(
    tmp_path: Path, cli_env: dict[str, str], r: redis.Redis, name: str, padded: bool
) -> None:
    path = tmp_path / name
    body = {"method": "grid", "program": "train.py", "parameters": {"x": {"values": [1]}}}
    if padded:  # a valid config, then 50 MB of padding (sparse: no disk written)
        with open(path, "w") as f:
            f.write(json.dumps(body) + "\n")
            f.truncate(50 * 1024 * 1024)
    else:  # valid JSON throughout: it was once stored whole as the sweep's config
        path.write_text(json.dumps({**body, "description": "d" * 3 * MAX_CONFIG_BYTES}))
    before = snapshot(r)
    line = one_line(run_sweepd("sweep", "create", str(path), env=cli_env), 2)
    assert line == f"sweepd: error: {path}: larger than a sweep file may be ({MAX_CONFIG_BYTES} bytes, 1 MiB)"
    assert snapshot(r) == before


def test_a_file_of_exactly_1_mib_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    path = tmp_path / "sweep.json"
    start = '{"method": "grid", "program": "train.py", "parameters": {"x": {"values": [1]}}, "description": "'
    path.write_text(start + "d" * (MAX_CONFIG_BYTES - len(start) - 2) + '"}')
    assert path.stat().st_size == MAX_CONFIG_BYTES
    assert load_config(path).description == "d" * (MAX_CONFIG_BYTES - len(start) - 2)
    path.write_text(start + "d" * (MAX_CONFIG_BYTES - len(start) - 1) + '"}')
    with pytest.raises(ConfigError, match="larger than a sweep file may be"):
        load_config(path)
    with pytest.raises(ConfigError, match="larger than a sweep file may be"):
        parse_text(path.read_text(), "sweep.json")


def test_aliases_that_expand_within_the_bound_still_work() -> None:
    text = HEAD.replace("x: {values: [1, 2]}", "x: &v {values: [1, 2]}\n  y: *v")
    assert [p.name for p in validate(parse_text(text)).params] == ["x", "y"]


@settings(max_examples=60, deadline=None)
@given(levels=st.integers(1, 30), fanout=st.integers(1, 12))
def test_any_alias_bomb_is_refused_in_bounded_time(levels: int, fanout: int) -> None:
    expanded = sum(fanout**i for i in range(levels)) + 4 * fanout ** (levels - 1)  # lists + "lol" leaves
    started = time.monotonic()
    try:
        parse_text(laughs(levels, fanout))
    except ConfigError as e:
        assert expanded > MAX_EXPANDED / 2
        (problem,) = e.problems
        assert "with its YAML aliases expanded" in problem
    else:
        assert expanded < MAX_EXPANDED * 2
    assert time.monotonic() - started < 10


@settings(max_examples=80, deadline=None)
@given(depth=st.integers(1, 3 * MAX_DEPTH), kind=st.sampled_from(["json", "flow", "block", "list", "alias"]))
def test_nesting_is_refused_past_the_bound_whatever_the_syntax(depth: int, kind: str) -> None:
    value: Any = 1
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    raw = {"method": "grid", "program": "t.py", "parameters": {"x": {"values": [1]}}, "description": value}
    if kind == "json":
        text, source = json.dumps(raw), "s.json"
    elif kind == "alias":  # the depth comes from aliases, not from the text's own nesting
        half = depth // 2
        text = "".join(f"l{i}: &l{i} {{a: {f'*l{i - 1}' if i else 1}}}\n" for i in range(depth - half))
        text += "description: " + "{a: " * half + f"*l{depth - half - 1}" + "}" * half + "\n" + HEAD
        source = "s.yaml"
    else:
        text, source = yaml.safe_dump(raw, default_flow_style=kind != "block"), "s.yaml"
    levels = depth + 1  # the top-level mapping holds description
    try:
        data = parse_text(text, source)
    except ConfigError as e:
        (problem,) = e.problems
        assert f"nested deeper than {MAX_DEPTH} levels" in problem and levels > MAX_DEPTH
    else:
        assert levels <= MAX_DEPTH
        assert data["description"] == value or kind == "alias"


#: Pieces of YAML that once broke, or could break, the parser or the constructors (``!!int `` alone
#: raised an IndexError), to be strung together at random.
YAML_TOKENS = [
    *"{}[]:,-'\"\n ",
    *("method: grid\n", "parameters:\n", "  x: ", "{values: [1]}", "program: ", "value: ", "1", "x", "~"),
    *("!!int ", "!!float ", "!!timestamp ", "!!binary ", "!!str ", "!!bool ", "!!null ", "!!map ", "!!seq "),
    *("!!set ", "!!omap ", "!!pairs ", "!!merge ", "!!python/tuple ", "2001-02-30", "1e400", ".nan", "0x"),
    *("1_0", "1:30", "&a ", "*a", "&b ", "*b", "<<: ", "? ", "%YAML 1.1\n---\n", "--- ", "...\n"),
]


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60) | st.lists(st.sampled_from(YAML_TOKENS), max_size=40).map("".join))
def test_any_text_parses_or_is_refused_as_one_clean_problem(text: str) -> None:
    for source in ("s.yaml", "s.json"):
        try:
            validate(parse_text(text, source), source)
        except ConfigError as e:
            assert e.problems and all(p and "\n" not in p for p in e.problems)


# --- Redis URLs ---------------------------------------------------------------------------------------


def test_a_database_index_out_of_range_is_the_url_s_mistake(cli_env: dict[str, str], redis_url: str) -> None:
    url = redis_url.rsplit("/", 1)[0] + "/99"
    line = one_line(run_sweepd("status", "abc", env={**cli_env, "SWEEPD_REDIS_URL": url}), 2)
    assert line == (
        f"sweepd: error: --redis-url {url}: Redis has no database 99 "
        "(DB index is out of range; a default Redis has 0 to 15)"
    )


@pytest.fixture(params=[b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", b"\x00\xffgarbage\r\n"])
def not_redis(request: pytest.FixtureRequest) -> Iterator[int]:
    """A TCP server that answers every connection with ``request.param``: not Redis."""
    server = socket.create_server(("127.0.0.1", 0))
    reply: bytes = request.param

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                conn.sendall(reply)

    threading.Thread(target=serve, daemon=True).start()
    yield int(server.getsockname()[1])
    server.close()


def test_a_server_that_is_not_redis_is_one_line_naming_the_url_without_its_password(
    cli_env: dict[str, str], not_redis: int
) -> None:
    url = f"redis://user:s3cret@127.0.0.1:{not_redis}/0"
    line = one_line(run_sweepd("status", "abc", env={**cli_env, "SWEEPD_REDIS_URL": url}), 3)
    assert line.startswith(f"sweepd: error: what answers at redis://user:***@127.0.0.1:{not_redis}/0 is not Redis (")
    assert line.endswith("check the URL's host and port") and "s3cret" not in line


def test_a_url_too_broken_to_split_is_one_line_without_its_password(cli_env: dict[str, str]) -> None:
    line = one_line(run_sweepd("status", "abc", env={**cli_env, "SWEEPD_REDIS_URL": "redis://:s3cret@[::1:6379/0"}), 2)
    assert "is not a Redis URL" in line and "s3cret" not in line


# --- ids ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rid", ["-abc", "--help", "-", "abc\n", ""])
def test_a_run_id_an_option_could_swallow_is_refused(rid: str) -> None:
    with pytest.raises(InvalidId, match="not starting with -"):
        check_id(rid, "run id")


@pytest.mark.parametrize("rid", ["abc", "a-b", "a-", "_a", "0", "A" * 64])
def test_ids_are_otherwise_as_they_were(rid: str) -> None:
    assert check_id(rid) == rid


def test_enqueue_refuses_a_run_id_starting_with_a_dash(tmp_path: Path, cli_env: dict[str, str], r: redis.Redis) -> None:
    (tmp_path / "sweep.yaml").write_text(HEAD)
    sid = run_sweepd("sweep", "create", str(tmp_path / "sweep.yaml"), "--quiet", env=cli_env).stdout.strip()
    before = snapshot(r)
    line = one_line(run_sweepd("enqueue", sid, "--id=-abc", "--param", "x=1", env=cli_env), 2)
    assert line.startswith("sweepd: error: run id '-abc' is not valid: use 1 to 64 of A-Z a-z 0-9 _ -")
    assert snapshot(r) == before


@settings(max_examples=200, deadline=None)
@given(st.integers(4, 64))
def test_a_generated_id_never_starts_with_a_dash(length: int) -> None:
    rid = new_id(length)
    assert check_id(rid) == rid and not rid.startswith("-")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.text(alphabet="-._é " + string.ascii_letters, max_size=50))
def test_any_hostname_makes_a_valid_agent_id(hostname: str) -> None:
    aid = f"{host_part(hostname)}-{2**22}-ffff"
    assert ID_RE.match(aid), aid
    assert host_part("-gpu-01.example") == "gpu-01-example"


# --- the runs table -----------------------------------------------------------------------------------


def test_control_characters_are_escaped_in_the_table_and_exact_in_csv_and_json(
    tmp_path: Path, cli_env: dict[str, str]
) -> None:
    (tmp_path / "sweep.yaml").write_text(HEAD.replace("[1, 2]", '["a", "b"]'))
    sid = run_sweepd("sweep", "create", str(tmp_path / "sweep.yaml"), "--quiet", env=cli_env).stdout.strip()
    value = "two\nlines\tand \x1b[31mred\u2028"
    done = run_sweepd("enqueue", sid, "--id", "r1", "--param", f"x={json.dumps(value)}", env=cli_env)
    assert done.returncode == 0, done.stderr
    text = run_sweepd("runs", sid, env=cli_env).stdout
    assert text.splitlines()[1].split() == ["r1", "queued", "0", "-", "two\\nlines\\tand", "\\x1b[31mred\\u2028"]
    assert len(text.splitlines()) == 2
    assert json.loads(run_sweepd("runs", sid, "--json", env=cli_env).stdout)[0]["params"] == {"x": value}
    csv_text = run_sweepd("runs", sid, "--csv", env=cli_env).stdout
    assert list(csv.reader(io.StringIO(csv_text)))[1][-1] == value


def test_a_metric_named_with_a_newline_keeps_the_header_one_line() -> None:
    config = validate({"method": "grid", "program": "t.py", "parameters": {"x": {"values": [1]}}})
    runs = [run_record("r1", "finished", {"x": 1}, {"bad\nname": 1.5})]
    cols = table.columns(config, runs)
    lines = table.text(cols, table.rows(cols, runs))
    assert len(lines) == 2 and lines[0].split()[-1] == "bad\\nname"


# --- renewal after Redis lost its data ----------------------------------------------------------------


def test_a_renewal_tells_a_run_that_is_gone_from_one_taken_elsewhere(r: redis.Redis, store: Store) -> None:
    sid = store.create_sweep(validate({"method": "grid", "program": "t.py", "parameters": {"x": {"values": [1, 2]}}}))
    claim = store.create_next(sid, "ag", 30)
    assert isinstance(claim, Claim)
    assert store.renew(claim, 30, tell_gone=True) == "ok"
    stale = dataclasses.replace(claim, token="not-the-token")
    assert store.renew(stale, 30, tell_gone=True) == "fenced"  # the run is there, held by another
    r.flushall()  # Redis lost its data while the run was held
    assert store.renew(claim, 30, tell_gone=True) == "gone"
    assert store.renew(claim, 30) == "fenced"  # a holder that does not ask for "gone" still stops
    assert r.keys("*") == []  # the renewal wrote nothing back
