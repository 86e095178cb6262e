"""Files a command writes: never an existing one unless ``--force``, checked before any work, and a failed write
(no permission, a full disk) is one line naming the cause the OS gave, with nothing half-written left."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.helpers import in_small_mount
from tests.test_cli import TINY, run


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("outputs")
    text = folder / "t.txt"
    text.write_text("\n".join(f"line {i}: every effort moves you forward" for i in range(300)))
    out = run("train", "--data", str(text), *TINY, "--max-steps", "2", "--out", str(folder / "run"), cwd=folder)
    assert out.returncode == 0, out.stderr
    return folder / "run"


def one_error_line(out) -> str:
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in out.stderr, out.stderr
    return lines[0]


def test_export_weights_keeps_an_existing_file_unless_forced(trained, tmp_path):
    target = tmp_path / "mine.safetensors"
    target.write_bytes(b"my own weights")
    refused = run("export", str(trained), "--format", "weights", "--out", str(target), cwd=tmp_path)
    assert refused.returncode == 2
    assert one_error_line(refused) == f"error: {target} exists; pass --force to overwrite it"
    assert target.read_bytes() == b"my own weights"
    forced = run("export", str(trained), "--format", "weights", "--out", str(target), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert target.read_bytes() != b"my own weights"


@pytest.fixture
def plot_args(trained):
    pytest.importorskip("matplotlib")
    return ["plot", str(trained)]


def test_plot_keeps_an_existing_image_unless_forced(plot_args, tmp_path):
    image = tmp_path / "loss.png"
    image.write_bytes(b"my picture")
    refused = run(*plot_args, "--out", str(image), cwd=tmp_path)
    assert refused.returncode == 2
    assert one_error_line(refused) == f"error: {image} exists; pass --force to overwrite it"
    assert image.read_bytes() == b"my picture"
    forced = run(*plot_args, "--out", str(image), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert image.read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png"]  # no temporary file beside it


@pytest.mark.parametrize("where, message", [
    ("under-a-file", "is a file, not a folder"),
    ("a-folder", "is a folder; give --out a file name"),
])
def test_plot_to_a_place_that_cannot_be_written_is_one_line(plot_args, tmp_path, where, message):
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "dir.png").mkdir()
    out = tmp_path / "file.txt" / "loss.png" if where == "under-a-file" else tmp_path / "dir.png"
    result = run(*plot_args, "--out", str(out), cwd=tmp_path)
    assert result.returncode == 2
    assert message in one_error_line(result)


def test_plot_into_a_read_only_folder_names_the_cause(plot_args, tmp_path):
    out = in_small_mount(tmp_path, "ro,size=64k",
                          [sys.executable, "-m", "gptmini", *plot_args, "--out", str(tmp_path / "mnt" / "loss.png")])
    assert out.returncode == 2
    assert "Read-only file system" in one_error_line(out)


@pytest.mark.parametrize("fmt, name", [("weights", "w.safetensors"), ("gguf", "m.gguf"), ("hf", "hf")])
def test_an_export_onto_a_full_disk_is_one_line_and_leaves_nothing(trained, tmp_path, fmt, name):
    if fmt == "gguf":
        pytest.importorskip("gguf")
    target = tmp_path / "mnt" / name
    out = in_small_mount(tmp_path, "size=16k", [sys.executable, "-m", "gptmini", "export", str(trained),
                                                 "--format", fmt, "--out", str(target)])
    assert out.returncode == 1
    line = one_error_line(out)
    assert line.startswith(f"error: cannot write {target}: ") and "no space left on device" in line.lower()
    assert out.stdout.splitlines()[-1].strip() == "LEFT:"  # nothing half-written
