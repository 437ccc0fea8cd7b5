"""derain.errors: the subject an error is about, and the one line the command line prints."""

from __future__ import annotations

import pickle

import pytest

from derain.errors import ImageError, OutputError, UnwritableFolder, describe


def test_about_names_the_subject_in_the_message_and_keeps_it_whole() -> None:
    err = OutputError.about("out/a: b.png", "cannot write (No space left on device)")
    assert str(err) == "out/a: b.png: cannot write (No space left on device)"
    assert err.subject == "out/a: b.png"
    assert ImageError("no subject named").subject is None


@pytest.mark.parametrize("name", ["a\nb.png", "a\nb: c\nd.png"])
def test_describe_keeps_a_subject_with_line_breaks_whole_though_no_such_file_exists(
    name: str,
) -> None:
    err = OutputError.about(name, "cannot write the .bmpx format\n(second line)")
    assert describe(err) == f"{name}: cannot write the .bmpx format"


def test_describe_cuts_a_message_without_a_subject_at_its_first_line() -> None:
    assert describe(ImageError("first\nsecond")) == "first"


def test_the_subject_survives_pickling_as_between_ray_workers() -> None:
    err = pickle.loads(pickle.dumps(ImageError.about("a\nb.png", "file is empty")))
    assert isinstance(err, ImageError) and err.subject == "a\nb.png"
    assert describe(err) == "a\nb.png: file is empty"


def test_an_unwritable_folder_names_the_output_and_the_folder_and_survives_pickling() -> None:
    err = pickle.loads(pickle.dumps(UnwritableFolder("x/a.png", "x", "Permission denied")))
    assert isinstance(err, UnwritableFolder)
    assert (err.subject, err.folder, err.reason) == ("x/a.png", "x", "Permission denied")
    assert describe(err) == "x/a.png: cannot write (Permission denied: x)"
