"""Image and video files in and out: finding inputs (:mod:`.discovery`), decoding
(:mod:`.imaging`), writing outputs (:mod:`.writing`), where a run reads and writes
(:mod:`.files`, :mod:`.arrow`) and video (:mod:`.video`).

This module is the face for users, loaded lazily: ``from derain.io import iter_images``
imports only what that name needs. Code inside the package imports the defining module.
A new image or video format is a module here plus its suffix in :mod:`.suffixes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names

#: Public name -> the module of this folder that defines it.
_LAZY = {
    "IMAGE_SUFFIXES": "suffixes",
    "MADE_BY_PREFIX": "writing",
    "Files": "files",
    "InputFile": "discovery",
    "LocalFiles": "files",
    "check_writable": "writing",
    "derained_path": "discovery",
    "encode_image": "writing",
    "encode_output": "writing",
    "expand_inputs": "discovery",
    "format_for_path": "writing",
    "has_glob": "discovery",
    "is_image_name": "suffixes",
    "iter_images": "discovery",
    "output_format": "writing",
    "read_made_by": "writing",
    "write_image_atomic": "writing",
}

if TYPE_CHECKING:
    from .discovery import InputFile, derained_path, expand_inputs, has_glob, iter_images
    from .files import Files, LocalFiles
    from .suffixes import IMAGE_SUFFIXES, is_image_name
    from .writing import (
        MADE_BY_PREFIX,
        check_writable,
        encode_image,
        encode_output,
        format_for_path,
        output_format,
        read_made_by,
        write_image_atomic,
    )


__all__ = [
    "IMAGE_SUFFIXES",
    "MADE_BY_PREFIX",
    "Files",
    "InputFile",
    "LocalFiles",
    "check_writable",
    "derained_path",
    "encode_image",
    "encode_output",
    "expand_inputs",
    "format_for_path",
    "has_glob",
    "is_image_name",
    "iter_images",
    "output_format",
    "read_made_by",
    "write_image_atomic",
]

__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)
