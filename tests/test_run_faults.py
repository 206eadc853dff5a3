"""A run directory under fault: one kind of model per directory, a resume hint that resumes, and a clear one-line
error (never a traceback) for a read-only directory, a damaged or empty ``state.sqlite``, a full disk and a
conversations file that is not UTF-8. Every fault is real where the machine allows it: a directory that cannot be
written (chmod, or for root a read-only bind mount), a store truncated or overwritten on disk, a tmpfs that fills
up."""

from __future__ import annotations

import errno
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner, Result

from dialforge.cli.main import app
from samples import write_music_config

runner = CliRunner()


@pytest.fixture
def music_config(tmp_path: Path, chinook_path: Path) -> Path:
    return write_music_config(tmp_path, chinook_path)


def dialforge(*args: str | Path) -> Result:
    return runner.invoke(app, [str(arg) for arg in args])


def last_line(result: Result) -> str:
    """The line dialforge ends a stopped run with (the lines before it are the dry-run notice and progress)."""
    assert "Traceback" not in result.output and "Traceback" not in result.stderr, result.stderr
    return result.stderr.strip().splitlines()[-1]


def resume_args(message: str) -> list[str]:
    """The arguments of the ``resume with:`` command in a message, as a shell would split them."""
    words = shlex.split(message.split("resume with: ", 1)[1])
    assert words[0] == "dialforge"
    return words[1:]


def record_ids(run_dir: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in (run_dir / "dialogues.jsonl").read_bytes().splitlines()]


def can_write_in(directory: Path) -> bool:
    probe = directory / ".probe"
    try:
        probe.write_bytes(b"")
    except OSError:
        return False
    probe.unlink()
    return True


def mount(*args: str | Path) -> bool:
    return (
        shutil.which("mount") is not None
        and subprocess.run(["mount", *map(str, args)], capture_output=True).returncode == 0
    )


@contextmanager
def read_only(directory: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``directory`` made read-only: by chmod for a normal user; for root, whom chmod does not stop, by a read-only
    bind mount; where root may not mount either, SQLite opens the files under it read-only and creating a file or
    directory there fails with EROFS, as on a read-only mount."""
    directory.chmod(0o555)
    try:
        if not can_write_in(directory):
            yield
        elif mount("--bind", directory, directory):
            try:
                assert mount("-o", "remount,bind,ro", directory, directory), "who may bind-mount may remount"
                yield
            finally:
                subprocess.run(["umount", str(directory)], check=True)
        else:
            with monkeypatch.context() as patch:
                patch_read_only(patch, directory)
                yield
    finally:
        directory.chmod(0o755)


def patch_read_only(patch: pytest.MonkeyPatch, directory: Path) -> None:
    import sqlite3

    real_connect, real_mkdir, real_open = sqlite3.connect, Path.mkdir, Path.open

    def under(path: Any) -> bool:
        return Path(path).resolve().is_relative_to(directory.resolve())

    def refuse(path: Path) -> OSError:
        return OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    def connect(path: Any, *args: Any, **kwargs: Any) -> sqlite3.Connection:
        if under(path):
            return real_connect(f"file:{path}?mode=ro", *args, uri=True, **kwargs)
        return real_connect(path, *args, **kwargs)

    def mkdir(self: Path, *args: Any, **kwargs: Any) -> None:
        if under(self) and not self.is_dir():
            raise refuse(next(path for path in [*reversed(self.parents), self] if not path.exists()))
        real_mkdir(self, *args, **kwargs)

    def open_(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if under(self) and mode[0] in "wax":
            raise refuse(self)
        return real_open(self, mode, *args, **kwargs)

    patch.setattr(sqlite3, "connect", connect)
    patch.setattr(Path, "mkdir", mkdir)
    patch.setattr(Path, "open", open_)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 4 MB tmpfs to fill up for real (root with the right to mount), else ``None``."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not mount("-t", "tmpfs", "-o", "size=4m", "tmpfs", disk):
        yield None
        return
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# --- one run directory, one kind of model --------------------------------------------------------------------


@pytest.fixture
def mock_server_url() -> Iterator[str]:
    """``dialforge mock-server`` in a process of its own: a real endpoint for a run that is not a dry run."""
    command = [sys.executable, "-m", "dialforge.cli.main", "mock-server", "--port", "0", "--latency-ms", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "listening on" in line, line
        yield line.rsplit(" ", 1)[1].strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_dry_run_directory_is_not_resumed_with_the_endpoints_nor_the_reverse(
    tmp_path: Path, chinook_path: Path, mock_server_url: str
) -> None:
    config = write_music_config(
        tmp_path, chinook_path, extra=f"models: {{default: {{model: mock-model, base_urls: {mock_server_url}}}}}\n"
    )
    dry = tmp_path / "dry"
    assert dialforge("run", config, "--dry-run", "--out", dry, "--limit", "2").exit_code == 0
    before = (dry / "dialogues.jsonl").read_bytes()
    for force in ([], ["--force-new-config"]):
        refused = dialforge("run", config, "--out", dry, *force)
        assert refused.exit_code == 2, refused.output
        assert str(dry) in refused.stderr and "--dry-run" in refused.stderr and "new --out" in refused.stderr
    assert (dry / "dialogues.jsonl").read_bytes() == before, "no dialogue of the endpoints joined the dry run's"

    real = tmp_path / "real"
    first = dialforge("run", config, "--out", real, "--limit", "1")
    assert first.exit_code == 0, first.output
    refused = dialforge("run", config, "--dry-run", "--out", real)
    assert refused.exit_code == 2 and "model endpoints" in refused.stderr and "leave out --dry-run" in refused.stderr
    assert len(record_ids(real)) == 1
    assert dialforge("run", config, "--dry-run", "--out", dry, "--limit", "3").exit_code == 0, "the dry run goes on"
    assert len(record_ids(dry)) == 3


# --- the resume hint -----------------------------------------------------------------------------------------


def fill_up_while_writing_dialogues(monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills up while ``dialogues.jsonl`` is written: its first line goes in, the rest finds no space."""
    real_open = Path.open

    class FullDisk:
        def __init__(self, handle: Any) -> None:
            self.handle = handle

        def __enter__(self) -> FullDisk:
            return self

        def __exit__(self, *exc: object) -> None:
            self.handle.close()

        def writelines(self, lines: Any) -> None:
            self.handle.write(next(iter(lines), b""))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def open_(self: Path, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = real_open(self, mode, *args, **kwargs)
        return FullDisk(handle) if self.name == "dialogues.jsonl.partial" else handle

    monkeypatch.setattr(Path, "open", open_)


def test_the_resume_hint_keeps_every_flag_of_the_command_shell_quoted(
    music_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "a run; with $pace"
    flags = ["--dry-run", "--limit", "3", "--concurrency", "2", "--force-new-config"]
    with monkeypatch.context() as patch:
        fill_up_while_writing_dialogues(patch)
        stopped = dialforge("run", music_config, *flags, "--out", out)
    assert stopped.exit_code == 1
    args = resume_args(last_line(stopped))
    assert args == ["run", str(music_config), *flags, "--out", str(out)]

    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert len(record_ids(out)) == 3, "the hint resumed the same run, with its --limit"

    chats = tmp_path / "chats.jsonl"
    chats.write_bytes(orjson.dumps({"messages": [{"role": "user", "content": "Hi!"}]}) + b"\n")
    extended = tmp_path / "extended run"
    with monkeypatch.context() as patch:
        fill_up_while_writing_dialogues(patch)
        stopped = dialforge("extend", chats, "--config", music_config, "--dry-run", "--out", extended)
    args = resume_args(last_line(stopped))
    assert args == ["extend", str(chats), "--config", str(music_config), "--dry-run", "--out", str(extended)]
    assert runner.invoke(app, args).exit_code == 0 and len(record_ids(extended)) == 1


# --- clear errors ----------------------------------------------------------------------------------------------


def test_a_new_run_in_a_read_only_directory_says_so_in_one_line(
    music_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent = tmp_path / "locked"
    parent.mkdir()
    with read_only(parent, monkeypatch):
        result = dialforge("run", music_config, "--dry-run", "--out", parent / "run")
    assert result.exit_code == 1
    line = last_line(result)
    assert line.startswith(f"cannot write {parent / 'run'}") and f"make {parent} writable" in line
    assert "resume with: dialforge run" in line
    assert not (parent / "run").exists()

    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory")
    result = dialforge("run", music_config, "--dry-run", "--out", a_file / "run")
    assert result.exit_code == 1
    assert f"{a_file} is a file, not a directory; choose another --out directory" in last_line(result)


def test_an_existing_run_in_a_read_only_directory_stops_with_nothing_lost(
    music_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    assert dialforge("run", music_config, "--dry-run", "--out", out, "--limit", "2").exit_code == 0
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    with read_only(out, monkeypatch):
        result = dialforge("run", music_config, "--dry-run", "--out", out)
    assert result.exit_code == 1
    line = last_line(result)
    assert line.startswith(f"cannot write {out}") and f"make {out} writable" in line
    assert resume_args(line) == ["run", str(music_config), "--dry-run", "--out", str(out)]
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before
    resumed = dialforge("run", music_config, "--dry-run", "--out", out)
    assert resumed.exit_code == 0 and len(record_ids(out)) == 8


def damage(store: Path, how: str) -> None:
    """Damage a real store as a crash, a bad disk or a careless copy would."""
    content = bytearray(store.read_bytes())
    if how == "truncated":
        del content[len(content) // 3 :]
    elif how == "pages overwritten":
        page = int.from_bytes(content[16:18], "big")
        for start in range(page, len(content), 3 * page):
            content[start : start + page] = b"\xde\xad\xbe\xef" * (page // 4)
    else:
        content[:100] = b"\0" * 100
    store.write_bytes(content)


@pytest.mark.parametrize("how", ["truncated", "pages overwritten", "header overwritten"])
def test_a_damaged_store_is_refused_and_left_as_it_is(music_config: Path, tmp_path: Path, how: str) -> None:
    out = tmp_path / "run"
    assert dialforge("run", music_config, "--dry-run", "--out", out, "--limit", "3").exit_code == 0
    damage(out / "state.sqlite", how)
    before = {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()}
    result = dialforge("run", music_config, "--dry-run", "--out", out)
    assert result.exit_code == 1
    line = last_line(result)
    assert line.startswith(f"{out / 'state.sqlite'} is damaged (")
    assert f"finished before are in {out / 'dialogues.jsonl'}" in line and "new --out directory" in line
    assert "resume with" not in line, "the same command cannot continue from a damaged store"
    assert {path.name: path.read_bytes() for path in out.iterdir() if path.is_file()} == before
    for command in (["stats", out], ["export", out, "--format", "openai", "-o", tmp_path / "x.jsonl"]):
        assert dialforge(*command).exit_code == 0, "stats and export read dialogues.jsonl, not the store"


def test_an_empty_store_starts_the_run_over_with_a_note_and_keeps_the_earlier_records(
    music_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert dialforge("run", music_config, "--dry-run", "--out", out, "--limit", "3").exit_code == 0
    earlier = (out / "dialogues.jsonl").read_bytes()
    (out / "state.sqlite").write_bytes(b"")
    result = dialforge("run", music_config, "--dry-run", "--out", out, "--limit", "1")
    assert result.exit_code == 0, result.output
    note = next(line for line in result.stderr.splitlines() if "0 bytes" in line)
    assert str(out / "state.sqlite") in note and "starts over" in note
    (kept,) = out.glob("dialogues.before-restart-*.jsonl")
    assert str(kept) in note and kept.read_bytes() == earlier
    assert len(record_ids(out)) == 1


def test_a_full_disk_while_dialogues_jsonl_is_written_loses_nothing_and_leaves_no_partial_file(
    music_config: Path, small_disk: Path | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = (small_disk or tmp_path) / "run"
    command = ["run", str(music_config), "--dry-run", "--out", str(out), "--limit", "5"]
    assert runner.invoke(app, command).exit_code == 0
    before = (out / "dialogues.jsonl").read_bytes()
    filler = (small_disk or tmp_path) / "filler"
    with monkeypatch.context() as patch:
        if small_disk is None:
            fill_up_while_writing_dialogues(patch)
        else:  # leave about 150 KB: room for the store's journal, not for the 5 records
            space = os.statvfs(small_disk)
            filler.write_bytes(b"\0" * (space.f_bavail * space.f_frsize - 150_000))
        result = runner.invoke(app, command)
    assert result.exit_code == 1
    line = last_line(result)
    assert line.startswith(f"cannot write {out / 'dialogues.jsonl'}: No space left on device; nothing stored was lost")
    assert "free space" in line and resume_args(line) == ["run", *command[1:3], "--limit", "5", "--out", str(out)]
    assert (out / "dialogues.jsonl").read_bytes() == before
    assert not list(out.glob("*.partial"))
    filler.unlink(missing_ok=True)
    assert runner.invoke(app, resume_args(line)).exit_code == 0 and len(record_ids(out)) == 5


def test_export_and_report_to_a_read_only_directory_say_so_in_one_line(
    music_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    assert dialforge("run", music_config, "--dry-run", "--out", out, "--limit", "2").exit_code == 0
    locked = tmp_path / "locked"
    locked.mkdir()
    with read_only(locked, monkeypatch):
        exported = dialforge("export", out, "--format", "openai", "-o", locked / "data.jsonl")
        reported = dialforge("report", out, "-o", locked / "report.html")
    assert exported.exit_code == 2 and reported.exit_code == 2
    assert last_line(exported).startswith(f"dialforge export: cannot write to {locked}")
    assert last_line(reported).startswith(f"dialforge report: cannot write {locked / 'report.html'}")
    for line in (last_line(exported), last_line(reported)):
        assert "choose an --output path in a writable directory" in line
    assert not list(locked.iterdir())


def test_a_conversation_that_is_not_utf8_is_recorded_as_failed_with_its_line(
    music_config: Path, tmp_path: Path
) -> None:
    chats = tmp_path / "chats.jsonl"
    good = orjson.dumps({"messages": [{"role": "user", "content": "Hi!"}]})
    chats.write_bytes(good + b"\n" + '{"messages": [{"role": "user", "content": "café"}]}\n'.encode("latin-1"))
    out = tmp_path / "extended"
    result = dialforge("extend", chats, "--config", music_config, "--dry-run", "--out", out)
    assert result.exit_code == 0, result.output
    assert f"{chats}, line 2 cannot be continued: not UTF-8 text (byte 0xe9" in result.output
    records = [orjson.loads(line) for line in (out / "dialogues.jsonl").read_bytes().splitlines()]
    assert [record["id"] for record in records] == ["extend-000000", "extend-000001"]
    failure = records[1]["failure"]
    assert records[1]["status"] == "failed" and "line 2" in failure and "save the file as UTF-8" in failure

    missing = dialforge("extend", tmp_path / "none.jsonl", "--config", music_config, "--dry-run", "--out", out)
    assert missing.exit_code == 2 and f"cannot read the conversations file {tmp_path / 'none.jsonl'}" in last_line(
        missing
    )


# --- Ray ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install 'dialforge[ray]')"
)
def test_when_ray_itself_fails_dialforge_says_so_with_the_resume_command(
    tmp_path: Path, chinook_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialforge.runner import ray_executor

    config = write_music_config(tmp_path, chinook_path, per_domain=12, extra="ray: {workers: 2}\n")
    out = tmp_path / "ray run"
    marker = tmp_path / "killed"
    with monkeypatch.context() as patch:
        patch.setattr(ray_executor, "MAX_RETRIES", 0)  # Ray gives up on the shard whose worker dies
        patch.setenv(ray_executor.KILL_AFTER_ENV, f"2:{marker}")
        failed = dialforge("run", config, "--dry-run", "--executor", "ray", "--concurrency", "2", "--out", out)
    assert marker.is_file(), "a worker must really have died"
    assert failed.exit_code == 1
    line = last_line(failed)
    assert line.startswith("Ray failed (WorkerCrashedError: ") and "the shards finished is stored" in line
    args = resume_args(line)
    assert args == ["run", str(config), "--dry-run", "--concurrency", "2", "--executor", "ray", "--out", str(out)]
    resumed = runner.invoke(app, args)
    assert resumed.exit_code == 0, resumed.output
    assert len(record_ids(out)) == 12
