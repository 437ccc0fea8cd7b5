"""Image files in and out: the public face of finding inputs (:mod:`derain.discovery`),
writing outputs (:mod:`derain.writing`) and the file-system back-ends (:mod:`derain.files`).
"""

from __future__ import annotations

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
