"""The list-file reader: LibMTL's format, and errors that name the file and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlx import DataError
from mtlx_office.listfile import read_list_file


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "amazon_train.txt"
    path.write_bytes(text.encode())
    return path


def test_reads_paths_labels_and_line_numbers(tmp_path):
    path = _write(tmp_path, "amazon/images/bike/frame_0001.jpg 17\namazon/images/back_pack/frame_0002.jpg 0\n")
    entries = read_list_file(path, num_classes=31)
    assert [(e.path, e.label, e.line) for e in entries] == [
        ("amazon/images/bike/frame_0001.jpg", 17, 1),
        ("amazon/images/back_pack/frame_0002.jpg", 0, 2),
    ]
    assert entries[1].where == f"{path}:2"


def test_crlf_line_endings_are_accepted(tmp_path):
    """LibMTL drops only the '\\n'; int() then ignores the '\\r', so such files work there too."""
    entries = read_list_file(_write(tmp_path, "a/b.jpg 3\r\nc/d.jpg 12\r\n"), num_classes=31)
    assert [(e.path, e.label) for e in entries] == [("a/b.jpg", 3), ("c/d.jpg", 12)]


def test_last_line_without_newline_names_file_and_line(tmp_path):
    """LibMTL would read label '1' from '12' here: refuse instead."""
    path = _write(tmp_path, "a/b.jpg 3\na/c.jpg 4\na/d.jpg 12")
    with pytest.raises(DataError, match=rf"{path}:3: the last line does not end with a newline"):
        read_list_file(path, num_classes=31)


def test_label_out_of_range_names_file_and_line(tmp_path):
    path = _write(tmp_path, "a/b.jpg 3\na/c.jpg 31\n")
    with pytest.raises(DataError, match=rf"{path}:2: label 31 is out of range: this dataset has 31 classes"):
        read_list_file(path, num_classes=31)
    with pytest.raises(DataError, match=r":1: label -1 is out of range"):
        read_list_file(_write(tmp_path, "a/b.jpg -1\n"), num_classes=31)


def test_path_with_space_names_file_and_line(tmp_path):
    path = _write(tmp_path, "a/b.jpg 3\na/my image.jpg 4\n")
    with pytest.raises(DataError, match=rf"{path}:2: expected .*separated by one space.*must not contain spaces"):
        read_list_file(path, num_classes=31)


@pytest.mark.parametrize("line", ["a/b.jpg", "a/b.jpg  3", "\t", ""])
def test_malformed_lines(tmp_path, line):
    path = _write(tmp_path, f"a/x.jpg 1\n{line}\n")
    with pytest.raises(DataError, match=rf"{path}:2: expected '<relative/image/path> <label>'"):
        read_list_file(path, num_classes=31)


def test_non_integer_label(tmp_path):
    with pytest.raises(DataError, match=r":1: the label 'bike' is not an integer"):
        read_list_file(_write(tmp_path, "a/b.jpg bike\n"), num_classes=31)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(DataError, match=r"list file .*nope.txt does not exist"):
        read_list_file(tmp_path / "nope.txt", num_classes=31)
    with pytest.raises(DataError, match=r"list file .*amazon_train.txt is empty"):
        read_list_file(_write(tmp_path, ""), num_classes=31)
