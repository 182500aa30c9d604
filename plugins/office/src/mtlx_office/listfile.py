"""LibMTL's Office list files: ``data_txt/<dataset>/<domain>_<split>.txt``, one ``path label\\n`` a line.

LibMTL's loader drops the last character of every line (taking it to be
the newline) and splits the rest on one space, so a last line without a
newline loses a digit of its label and a path with a space breaks the
split. We read the same format but refuse such files, naming the file and
line, instead of training on silently wrong labels.
"""

from __future__ import annotations

from pathlib import Path

import attrs

from mtlx import DataError

__all__ = ["ListEntry", "read_list_file"]


@attrs.frozen
class ListEntry:
    """One sample of a list file: image path (relative to the data root), label, and where it was read."""

    path: str
    label: int
    source: Path
    line: int

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def read_list_file(path: Path, num_classes: int) -> list[ListEntry]:
    """Parse and check ``path``; labels must lie in ``0..num_classes-1``.

    Raises:
        DataError: the file is missing or empty, or a line is malformed, naming ``file:line``.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DataError(f"list file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"list file {path} cannot be read: {error}") from None
    lines = text.split("\n")
    if lines[-1] != "":
        raise DataError(
            f"{path}:{len(lines)}: the last line does not end with a newline; LibMTL-format list files need "
            "one after every line (its loader drops the last character of each), so add it"
        )
    entries = [
        _parse_line(raw.removesuffix("\r"), path, number, num_classes) for number, raw in enumerate(lines[:-1], 1)
    ]
    if not entries:
        raise DataError(f"list file {path} is empty")
    return entries


def _parse_line(text: str, path: Path, number: int, num_classes: int) -> ListEntry:
    where = f"{path}:{number}"
    fields = text.split(" ")
    if len(fields) != 2 or not fields[0]:
        raise DataError(
            f"{where}: expected '<relative/image/path> <label>' separated by one space "
            f"(image paths must not contain spaces), got {text!r}"
        )
    image, label_text = fields
    try:
        label = int(label_text)
    except ValueError:
        raise DataError(f"{where}: the label {label_text!r} is not an integer") from None
    if not 0 <= label < num_classes:
        raise DataError(
            f"{where}: label {label} is out of range: this dataset has {num_classes} classes (0..{num_classes - 1})"
        )
    return ListEntry(image, label, path, number)
