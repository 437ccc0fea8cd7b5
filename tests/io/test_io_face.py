"""Tests for derain.io (inputs, atomic writing) and derain.scoring.pairs (paired folders)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from derain.errors import DerainError, OutputError
from derain.io import (
    derained_path,
    encode_image,
    expand_inputs,
    iter_images,
    write_image_atomic,
)
from derain.scoring.pairs import find_pairs, scan_pairs


def _image(h: int = 32, w: int = 48, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def _save(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    _image(seed=seed).save(path)
    return path


def _leftovers(folder: Path) -> list[str]:
    return [p.name for p in folder.rglob("*.tmp")]


def test_write_atomic_png_and_no_temp(tmp_path: Path) -> None:
    out = write_image_atomic(_image(), tmp_path / "sub" / "a.png")
    assert out.is_file() and _leftovers(tmp_path) == []
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (48, 32)


def test_write_atomic_keeps_icc_and_exif_with_orientation_reset(tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "RainCam"
    out = write_image_atomic(
        _image(), tmp_path / "a.jpg", quality=80, icc_profile=icc, exif=exif.tobytes()
    )
    with Image.open(out) as im:
        assert im.format == "JPEG"
        assert im.info["icc_profile"] == icc
        assert im.getexif()[0x0112] == 1
        assert im.getexif()[0x010F] == "RainCam"


def test_quality_changes_jpeg_size() -> None:
    im = _image(64, 64)
    assert len(encode_image(im, "JPEG", 20)) < len(encode_image(im, "JPEG", 95))


def test_rgba_to_jpeg_is_converted(tmp_path: Path) -> None:
    im = _image().convert("RGBA")
    with Image.open(write_image_atomic(im, tmp_path / "a.jpg")) as out:
        assert out.mode == "RGB"


def test_interrupted_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "a.png"
    target.write_bytes(b"old")

    def broken_save(self: Image.Image, fp: object, *args: object, **kwargs: object) -> None:
        fp.write(b"partial")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(KeyboardInterrupt):
        write_image_atomic(_image(), target)
    assert target.read_bytes() == b"old"  # the earlier file is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png"]


def test_unwritable_output_is_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        write_image_atomic(_image(), blocker / "a.png")
    assert str(blocker / "a.png") in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(OutputError, match="format"):
        write_image_atomic(_image(), tmp_path / "a.unknownext")


def test_iter_images_recursion_hidden_and_symlink_loop(tmp_path: Path) -> None:
    _save(tmp_path / "a.png")
    _save(tmp_path / "sub" / "b.jpg")
    _save(tmp_path / ".hidden.png")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "sub" / "loop").symlink_to(tmp_path, target_is_directory=True)
    flat = [p.relative_to(tmp_path).as_posix() for p in iter_images(tmp_path, False)]
    deep = [p.relative_to(tmp_path).as_posix() for p in iter_images(tmp_path, True)]
    assert flat == ["a.png"]
    assert deep == ["a.png", "sub/b.jpg"]


def test_expand_inputs_mirrors_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    _save(Path("in/a.png"))
    _save(Path("in/x/b.png"))
    _save(Path("in/out/skip.png"))
    files, errors = expand_inputs(
        ["in", "in/x/*.png", "missing.png", "none*.jpg"], recursive=True, exclude=Path("in/out")
    )
    rels = [f.relative.as_posix() for f in files]
    assert rels == ["a.png", "x/b.png", "b.png"]
    assert errors == [
        "missing.png: no such file or folder",
        "none*.jpg: pattern matches no image files",
    ]


def test_derained_path() -> None:
    assert derained_path(Path("d/photo.jpeg")) == Path("d/photo_derained.jpeg")


def test_find_pairs_by_stem_natural_order(tmp_path: Path) -> None:
    for i in (1, 2, 10):
        _save(tmp_path / "rain" / f"{i}.png", i)
        _save(tmp_path / "norain" / f"{i}.jpg", i)
    _save(tmp_path / "rain" / "orphan.png")
    _save(tmp_path / "norain" / "lonely.png")
    scan = scan_pairs(tmp_path)
    assert [a.name for a, _ in scan.pairs] == ["1.png", "2.png", "10.png"]
    assert [b.name for _, b in scan.pairs] == ["1.jpg", "2.jpg", "10.jpg"]
    assert scan.unpaired_inputs == ["orphan.png"] and scan.unpaired_targets == ["lonely.png"]
    assert scan.layout == ("rain", "norain")
    assert find_pairs(tmp_path) == scan.pairs


def test_find_pairs_input_target_layout(tmp_path: Path) -> None:
    _save(tmp_path / "input" / "a.png")
    _save(tmp_path / "target" / "a.png")
    assert len(find_pairs(tmp_path)) == 1


def test_find_pairs_errors_are_one_line(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    for root in (tmp_path / "photos", tmp_path / "missing"):
        with pytest.raises(DerainError) as info:
            find_pairs(root)
        assert str(info.value).startswith(str(root)) and "\n" not in str(info.value)
    _save(tmp_path / "rain" / "a.png")
    _save(tmp_path / "norain" / "b.png")
    with pytest.raises(DerainError, match="same-named"):
        find_pairs(tmp_path)


def test_permissions_follow_umask(tmp_path: Path) -> None:
    out = write_image_atomic(_image(), tmp_path / "a.png")
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
