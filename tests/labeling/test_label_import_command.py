"""``manage.py import_labels``: counts, line-numbered errors, --dry-run, --atomic, bad files."""

from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from labeling.models import Label, LabelSource
from tests.labeling.label_import_support import at, csv_file, jsonl, row

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("groups")]


@pytest.fixture
def videos(make_video):
    return [make_video(aid=aid) for aid in (170001, 170002)]


def run(*args) -> str:
    stdout = io.StringIO()
    call_command("import_labels", *map(str, args), stdout=stdout, stderr=io.StringIO())
    return stdout.getvalue()


def test_prints_counts_and_errors_with_line_numbers_and_reimport_adds_nothing(tmp_path, videos):
    path = tmp_path / "labels.jsonl"
    path.write_bytes(jsonl(row(170001, "alice", True, at(0)), row(424242, "bob"), row(170002, "bob", "no", at(1))))

    output = run(path)

    assert "line 2: aid: no video with aid 424242 (import the video first)" in output
    assert "Read 3 rows: 2 labels written, 0 already present, 2 users created, 1 rejected" in output
    assert Label.objects.filter(source=LabelSource.IMPORT).count() == 2

    again = run(path, "--no-progress")
    assert "Read 3 rows: 0 labels written, 2 already present, 0 users created, 1 rejected" in again
    assert Label.objects.count() == 2


def test_csv_with_the_format_option(tmp_path, videos):
    path = tmp_path / "export.txt"
    path.write_bytes(csv_file(f"170001,alice,yes,{at()}", f"170002,alice,0,{at(1)}"))

    output = run(path, "--format", "csv")

    assert "2 labels written" in output
    assert sorted(Label.objects.values_list("video__aid", "value")) == [(170001, True), (170002, False)]


def test_dry_run_writes_nothing(tmp_path, videos):
    path = tmp_path / "labels.csv"
    path.write_bytes(csv_file(f"170001,alice,true,{at()}"))

    output = run(path, "--dry-run")

    assert "1 labels would be written" in output and "1 users would be created" in output
    assert "dry run: nothing written" in output
    assert not Label.objects.exists()
    assert not get_user_model().objects.exists()


def test_atomic_fails_and_writes_nothing_when_a_row_is_bad(tmp_path, videos):
    path = tmp_path / "labels.jsonl"
    path.write_bytes(jsonl(row(170001), row(170002, "bob", "perhaps")))
    stdout = io.StringIO()

    with pytest.raises(CommandError, match="nothing was written"):
        call_command("import_labels", str(path), "--atomic", stdout=stdout, stderr=io.StringIO())

    assert 'line 2: label: must be true/false, 1/0 or yes/no (got "perhaps")' in stdout.getvalue()
    assert not Label.objects.exists()


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("labels.xml", b"<x/>", "cannot tell the format"),
        ("missing.jsonl", None, "cannot read"),
        ("labels.csv", b"aid,user,value,created_at\n170001,alice,true,2024-01-01\n", r"required column\(s\) label"),
        ("labels.jsonl", b"aid,user,label,created_at\n170001,alice,true,2024-01-01\n", "no line of the file is valid JSON"),
    ],
)
def test_fails_when_the_file_cannot_be_read_and_writes_nothing(tmp_path, videos, name, content, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)

    with pytest.raises(CommandError, match=message):
        run(path)

    assert not Label.objects.exists()
    assert not get_user_model().objects.exists()
