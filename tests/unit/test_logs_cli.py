"""``seawall logs``: parsing lines, filters, --since, pretty-printing, merging files, following.

Pure logic on temp files: a follower is polled by the test (``poll()`` reads what is there,
it never waits), so nothing here sleeps.
"""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from broker.cli import _parser, main
from broker.log_files import Follower, LogFile, LogSources, merged_records
from broker.log_format import Formatter, traceback_lines
from broker.log_records import LogFilter, parse_line, parse_since
from broker.logs_cli import run_logs

NOW = datetime(2024, 5, 1, 2, 50, 0, tzinfo=timezone.utc)


def line(event: str, at_s: float = 0.0, level: str = "info", process: str = "broker", **fields) -> str:
    """A log line as shared/logging.py writes it, ``at_s`` seconds after NOW."""
    stamp = (NOW + timedelta(seconds=at_s)).isoformat().replace("+00:00", "Z")
    return json.dumps({"component": process, **fields, "event": event, "process": process, "pid": 42,
                       "level": level, "timestamp": stamp})


def write(path: Path, *lines: str, mode: str = "a") -> Path:
    with path.open(mode) as stream:
        stream.write("".join(text + "\n" for text in lines))
    return path


def run_cli(*argv: str) -> tuple[int, str]:
    """(exit status, output) of ``seawall logs ARGV``, in this process."""
    out = io.StringIO()
    code = run_logs(_parser().parse_args(["logs", *argv]), out)
    return code, out.getvalue()


# -- parsing -------------------------------------------------------------------------------


def test_a_json_line_becomes_fields_and_an_aware_timestamp():
    record = parse_line(line("breaker_opened", command="GetRatings"), "broker.log")
    assert record.event == "breaker_opened"
    assert record.fields["command"] == "GetRatings"
    assert record.timestamp == NOW
    assert record.source == "broker.log"


@pytest.mark.parametrize("text", ["Traceback (most recent call last):", "{not json", "[1, 2]", "", "{}x"])
def test_a_line_that_is_not_a_json_object_is_kept_raw(text):
    record = parse_line(text)
    assert record.fields is None
    assert record.raw == text


def test_an_unreadable_timestamp_leaves_the_fields():
    record = parse_line(json.dumps({"event": "x", "timestamp": "yesterday"}))
    assert record.fields["event"] == "x"
    assert record.timestamp is None


# -- --since -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, ago", [("90s", timedelta(seconds=90)), ("5m", timedelta(minutes=5)),
                                       ("2h", timedelta(hours=2)), ("1d", timedelta(days=1)),
                                       ("1.5m", timedelta(seconds=90))])
def test_since_relative(text, ago):
    assert parse_since(text, now=lambda: NOW) == NOW - ago


def test_since_iso_with_zone():
    assert parse_since("2024-05-01T02:49:00Z") == NOW - timedelta(minutes=1)


def test_since_naive_iso_is_local_time():
    assert parse_since("2024-05-01T02:49:00") == datetime(2024, 5, 1, 2, 49).astimezone()


def test_since_clock_time_is_today_local():
    moment = parse_since("02:30", now=lambda: NOW)
    assert (moment.hour, moment.minute) == (2, 30)
    assert moment.date() == NOW.astimezone().date()


@pytest.mark.parametrize("text", ["5x", "m5", "soon", "25:00", ""])
def test_since_rejects_what_is_not_a_time(text):
    with pytest.raises(ValueError, match="is not a time"):
        parse_since(text)


def test_bad_since_is_a_usage_error_naming_the_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["logs", "--since", "5x", "x.log"])
    assert exit_info.value.code == 2
    assert "--since: '5x' is not a time" in capsys.readouterr().err


# -- filters -------------------------------------------------------------------------------


def accepted(log_filter: LogFilter, *lines: str) -> list[str]:
    return [record.event or record.raw for record in map(parse_line, lines) if log_filter.accepts(record)]


def test_command_filter_takes_exact_names_and_globs():
    lines = [line("a", command="GetRatings"), line("b", command="GetVideos"), line("c", command="PutX"), line("d")]
    assert accepted(LogFilter.from_options(commands=["GetRatings"]), *lines) == ["a"]
    assert accepted(LogFilter.from_options(commands=["Get*"]), *lines) == ["a", "b"]


def test_event_filter_is_repeatable_and_takes_comma_lists():
    lines = [line("breaker_opened"), line("breaker_closed"), line("call_failed"), line("call_succeeded")]
    log_filter = LogFilter.from_options(events=["breaker_opened,call_failed", "breaker_closed"])
    assert accepted(log_filter, *lines) == ["breaker_opened", "breaker_closed", "call_failed"]
    assert accepted(LogFilter.from_options(events=["call_*"]), *lines) == ["call_failed", "call_succeeded"]


def test_level_filter_keeps_that_level_and_above():
    lines = [line("d", level="debug"), line("i", level="info"), line("w", level="warning"), line("e", level="error")]
    assert accepted(LogFilter.from_options(level="warning"), *lines) == ["w", "e"]


def test_process_filter():
    lines = [line("a", process="broker"), line("b", process="worker"), line("c", process="front")]
    assert accepted(LogFilter.from_options(processes=["worker,front"]), *lines) == ["b", "c"]


def test_since_filter_judges_raw_lines_by_the_line_before_them():
    log_filter = LogFilter.from_options(since=NOW)
    lines = ["orphan", line("old", at_s=-1), "old traceback", line("new", at_s=1), "new traceback"]
    assert accepted(log_filter, *lines) == ["new", "new traceback"]


def test_raw_lines_pass_only_without_field_filters():
    assert accepted(LogFilter.from_options(), "crash!") == ["crash!"]
    assert accepted(LogFilter.from_options(events=["x"]), "crash!") == []
    assert accepted(LogFilter(raw_lines=False), "crash!") == []


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="'loud' is not a level"):
        LogFilter.from_options(level="loud")


# -- pretty printing -----------------------------------------------------------------------


def test_pretty_line_shows_time_level_process_event_then_the_important_fields_first():
    record = parse_line(line("call_failed", level="warning", extra=1, error="boom", latency_ms=12.5,
                             outcome="FAILURE", dependency="ratings", command="GetRatings"))
    text = Formatter().format(record)
    local = NOW.astimezone()
    assert text.startswith(f"{local:%H:%M:%S}.000 WARN  broker/42")
    assert text.split("call_failed")[1].split() == [
        "command=GetRatings", "dependency=ratings", "outcome=FAILURE", "latency_ms=12.5", "error=boom", "extra=1"]
    assert "component" not in text and "timestamp" not in text


def test_pretty_values_quote_spaces_and_compact_structures():
    text = Formatter().format(parse_line(line("x", reason="62% errors in 24 calls", sizes={"a": [1, 2]})))
    assert 'reason="62% errors in 24 calls"' in text
    assert 'sizes={"a":[1,2]}' in text


def test_multi_line_values_are_indented_below():
    text = Formatter().format(parse_line(line("x", error="RuntimeError: down\n  at here")))
    assert text.splitlines()[1:] == ["    RuntimeError: down", "      at here"]


def test_tracebacks_read_like_python_prints_them():
    exception = [{"exc_type": "KeyError", "exc_value": "'k'", "is_cause": False,
                  "frames": [{"filename": "a.py", "lineno": 7, "name": "run"}]},
                 {"exc_type": "ZeroDivisionError", "exc_value": "division by zero", "is_cause": True,
                  "frames": [{"filename": "b.py", "lineno": 6, "name": "divide"}]}]
    assert traceback_lines(exception) == [
        "Traceback (most recent call last):", '  File "b.py", line 6, in divide', "ZeroDivisionError: division by zero",
        "", "The above exception was the direct cause of the following exception:", "",
        "Traceback (most recent call last):", '  File "a.py", line 7, in run', "KeyError: 'k'"]
    text = Formatter().format(parse_line(line("boom", level="error", exception=exception)))
    assert text.splitlines()[1] == "    Traceback (most recent call last):"


def test_colour_only_when_asked():
    record = parse_line(line("breaker_opened", level="warning"))
    assert "\033[" not in Formatter().format(record)
    coloured = Formatter(colour=True).format(record)
    assert "\033[33mWARN \033[0m" in coloured and "\033[1mbreaker_opened" in coloured


def test_raw_lines_are_dimmed_and_name_their_file_when_files_are_interleaved():
    record = parse_line("Traceback (most recent call last):", "pool-ratings-00.log")
    assert Formatter().format(record) == "Traceback (most recent call last):"
    assert Formatter(colour=True, show_source=True).format(record) == \
        "\033[2mpool-ratings-00.log: Traceback (most recent call last):\033[0m"


# -- reading and merging -------------------------------------------------------------------


def opened(*paths: Path) -> list[LogFile]:
    files = [LogFile(path) for path in paths]
    assert all(log_file.open() for log_file in files)
    return files


def test_files_are_interleaved_in_timestamp_order_raw_lines_staying_with_their_predecessor(tmp_path):
    broker = write(tmp_path / "broker.log", line("b0", 0), line("b2", 2), "b2 traceback", line("b4", 4))
    worker = write(tmp_path / "worker.log", line("w1", 1), line("w3", 3))
    merged = [record.event or record.raw for record in merged_records(opened(broker, worker))]
    assert merged == ["b0", "w1", "b2", "b2 traceback", "w3", "b4"]


def test_files_of_the_same_name_in_two_directories_keep_their_raw_lines_apart(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write(tmp_path / "a" / "broker.log", line("a0", 0), "a0 detail", line("a2", 2))
    second = write(tmp_path / "b" / "broker.log", line("b1", 1), "b1 detail")
    merged = [record.event or record.raw for record in merged_records(opened(first, second))]
    assert merged == ["a0", "a0 detail", "b1", "b1 detail", "a2"]


def test_a_file_named_twice_or_through_a_symlink_is_read_once(tmp_path):
    write(tmp_path / "broker.log", line("b"))
    (tmp_path / "current").symlink_to(tmp_path)
    sources = LogSources(paths=[tmp_path / "broker.log"], directories=[tmp_path, tmp_path / "current"])
    assert sources.current_paths() == [tmp_path / "broker.log"]


def test_merging_streams_the_files_instead_of_loading_them(tmp_path):
    big = write(tmp_path / "big.log", *(line("e", index) for index in range(20_000)))
    files = opened(big, write(tmp_path / "small.log", line("s", 0.5)))
    records = merged_records(files)
    assert [next(records).event for _ in range(3)] == ["e", "s", "e"]
    assert files[0]._handle.tell() < big.stat().st_size / 10


def test_a_last_line_without_newline_is_read_once_the_file_is_final(tmp_path):
    path = tmp_path / "broker.log"
    path.write_text(line("complete") + "\n" + line("cut"))
    assert [record.event for record in merged_records(opened(path), final=True)] == ["complete", "cut"]
    assert [record.event for record in merged_records(opened(path), final=False)] == ["complete"]


def test_undecodable_bytes_do_not_stop_reading(tmp_path):
    path = tmp_path / "broker.log"
    path.write_bytes(b"\xff\xfe garbage\n" + line("after").encode() + b"\n")
    records = list(merged_records(opened(path)))
    assert records[0].fields is None and records[1].event == "after"


# -- following -----------------------------------------------------------------------------


def events(records) -> list[str]:
    return [record.event or record.raw for record in records]


def test_follow_starts_at_the_end_and_reads_appended_lines(tmp_path):
    path = write(tmp_path / "broker.log", line("before"))
    follower = Follower(LogSources(paths=[path]))
    assert events(follower.poll()) == []
    write(path, line("after"))
    assert events(follower.poll()) == ["after"]
    follower.close()


def test_follow_holds_a_half_written_line_until_its_newline(tmp_path):
    path = write(tmp_path / "broker.log")
    follower = Follower(LogSources(paths=[path]))
    text = line("slow")
    path.open("a").write(text[:10])
    assert events(follower.poll()) == []
    write(path, text[10:])
    assert events(follower.poll()) == ["slow"]
    follower.close()


def test_follow_survives_rotation_like_supervisord_does_it(tmp_path):
    path = write(tmp_path / "broker.log", line("old"))
    follower = Follower(LogSources(paths=[path]))
    write(path, line("last before rotation"))
    path.rename(tmp_path / "broker.log.1")
    write(path, line("first after rotation"))
    assert events(follower.poll()) == ["last before rotation", "first after rotation"]
    write(path, line("next"))
    assert events(follower.poll()) == ["next"]
    follower.close()


def test_follow_survives_truncation(tmp_path):
    path = write(tmp_path / "broker.log", line("a"), line("b"))
    follower = Follower(LogSources(paths=[path]))
    write(path, line("fresh"), mode="w")
    assert events(follower.poll()) == ["fresh"]
    follower.close()


def test_follow_waits_for_a_file_that_does_not_exist_yet_and_for_a_deleted_one(tmp_path):
    path = tmp_path / "late.log"
    follower = Follower(LogSources(paths=[path]))
    assert events(follower.poll()) == []
    write(path, line("born"))
    assert events(follower.poll()) == ["born"]
    path.unlink()
    assert events(follower.poll()) == []
    write(path, line("reborn"))
    assert events(follower.poll()) == ["reborn"]
    follower.close()


def test_follow_picks_up_new_log_files_in_a_directory_but_not_supervisords(tmp_path):
    write(tmp_path / "broker.log", line("old"))
    follower = Follower(LogSources(directories=[tmp_path]))
    write(tmp_path / "pool-ratings-01.log", line("new pool worker"))
    write(tmp_path / "supervisord.log", "2024-05-01 02:50:00,000 INFO spawned: 'broker'")
    assert events(follower.poll()) == ["new pool worker"]
    follower.close()


def test_follow_batches_sleep_only_when_nothing_is_new(tmp_path):
    path = write(tmp_path / "broker.log")
    naps: list[float] = []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        write(path, line(f"after nap {len(naps)}"))

    batches = Follower(LogSources(paths=[path]), poll_s=0.2, sleep=nap).batches()
    assert events(next(batches)) == ["after nap 1"]
    assert naps == [0.2]


def test_follow_hands_a_burst_over_in_bounded_batches(tmp_path):
    path = write(tmp_path / "broker.log")
    batches = Follower(LogSources(paths=[path]), sleep=lambda seconds: None).batches()
    write(path, *(line("e", index) for index in range(2500)))
    assert [len(next(batches)) for _ in range(3)] == [1000, 1000, 500]


# -- the command line ------------------------------------------------------------------------


def test_json_output_is_the_matching_lines_as_written(tmp_path):
    path = write(tmp_path / "broker.log", line("breaker_opened", command="A"), "raw", line("call_failed"))
    code, out = run_cli(str(path), "--json", "--event", "breaker_opened")
    assert code == 0
    assert [json.loads(text)["command"] for text in out.splitlines()] == ["A"]


def test_last_n_lines(tmp_path):
    path = write(tmp_path / "broker.log", *(line(f"e{index}", index) for index in range(10)))
    code, out = run_cli(str(path), "-n", "2", "--json")
    assert [json.loads(text)["event"] for text in out.splitlines()] == ["e8", "e9"]


def test_a_missing_file_is_an_error_naming_it(tmp_path, capsys):
    code, out = run_cli(str(tmp_path / "nope.log"))
    assert code == 1 and out == ""
    assert f"no such log file: {tmp_path / 'nope.log'}" in capsys.readouterr().err


def test_default_files_are_the_run_dirs_logs_except_supervisords(tmp_path, monkeypatch):
    (tmp_path / "seawall.toml").write_text('run_dir = "state"\n')
    logs_dir = tmp_path / "state" / "logs"
    logs_dir.mkdir(parents=True)
    write(logs_dir / "broker.log", line("b", 1))
    write(logs_dir / "pool-ratings-00.log", line("w", 0))
    write(logs_dir / "supervisord.log", "2024-05-01 02:50:00,000 INFO supervisord started")
    monkeypatch.setenv("SEAWALL_CONFIG", str(tmp_path / "seawall.toml"))
    code, out = run_cli()
    assert code == 0
    assert [text.split()[3] for text in out.splitlines()] == ["w", "b"]


def test_no_log_directory_is_an_error_naming_it(tmp_path, capsys):
    (tmp_path / "seawall.toml").write_text('run_dir = "state"\n')
    code = main(["--config", str(tmp_path / "seawall.toml"), "logs"])
    assert code == 1
    assert f"no log directory {tmp_path / 'state' / 'logs'}" in capsys.readouterr().err


@pytest.mark.parametrize("bad_toml", ['run_dir = "run"\n[defaults]\ntimeout_s = -1\n', "[defaults\n"],
                         ids=["a bad value", "not TOML"])
def test_a_config_that_does_not_validate_still_leads_to_its_logs(tmp_path, capsys, bad_toml):
    """The processes refused to start and said why in their logs: those must be readable."""
    config_path = tmp_path / "seawall.toml"
    config_path.write_text(bad_toml)
    logs_dir = tmp_path / "run" / "logs"
    logs_dir.mkdir(parents=True)
    (logs_dir / "broker.log").write_text(json.dumps(
        {"event": "startup_refused", "level": "error", "timestamp": "2026-12-07T02:51:07Z",
         "error": "bad config: defaults.timeout_s: expected a number > 0"}) + "\n")

    out = io.StringIO()
    status = run_logs(_parser().parse_args(["--config", str(config_path), "logs", "--level", "error", "--json"]), out)

    assert status == 0
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["startup_refused"]
    assert f"reading the logs under {tmp_path / 'run'} all the same" in capsys.readouterr().err
