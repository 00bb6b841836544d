"""`keras-h5`: Keras weight files (`model.save_weights("x.weights.h5")`, legacy `.h5`)."""

from __future__ import annotations

from typing import BinaryIO

from attrs import frozen

from theta.errors import FormatError
from theta.formats import Checkpoint, CheckpointFormat, Layout, Source
from theta.splice import cut
from theta_format_tensorflow import byteorder, hdf5

KIND = "keras-h5"


@frozen
class KerasH5Format(CheckpointFormat):
    name = KIND
    extensions = (".weights.h5", ".h5", ".hdf5")

    def sniff(self, head: bytes) -> bool:
        return hdf5.has_signature(head)

    def read(self, source: Source) -> Checkpoint:
        if not self.sniff(source.head):
            raise FormatError(
                f"{source.path}: not an HDF5 file (no \\x89HDF signature); a Keras weights file is HDF5."
                " If it is another format, set theta-format in .gitattributes"
            )
        file = source.spool().open("rb")
        try:
            with hdf5.open_hdf5(file, source.path) as h5:
                found = hdf5.regions_of(h5)
            skeleton = cut(file, found, kind=KIND, path=source.path)
        except BaseException:
            file.close()
            raise
        return Checkpoint(skeleton=skeleton.encode(), parameters=byteorder.tensors(file, skeleton.regions, source.path))

    def write(self, layout: Layout, sink: BinaryIO) -> None:
        skeleton = byteorder.decode(layout, KIND)
        if skeleton.matches(layout.parameters):
            byteorder.write(skeleton, layout, sink)
            return
        rebuilt = hdf5.rebuild(skeleton, layout, 0, skeleton.size)
        with rebuilt:
            hdf5.copy_stream(rebuilt, sink)
