"""H5Tree: the objects described in memory, created by HDF5's C functions (``native``) and
by h5py's low-level API (``h5py``), must give the same files, and the same objects as
h5py's high-level API would make."""

from __future__ import annotations

import h5py
import hdf5plugin
import numpy as np
import pytest
from h5_content import differences, file_content

from jfsim.writer.datafile import PrivateHdf5File
from jfsim.writer.h5tree import H5Tree, probe
from jfsim.writer.hdf5_library import probe_private

BITSHUFFLE = hdf5plugin.Bitshuffle(cname="lz4")


def every_kind_of_object(*, virtual: bool = True) -> H5Tree:
    """One object of each kind a tree makes (``virtual``: with a virtual dataset)."""
    tree = H5Tree()
    tree.attrs("", NX_class="NXroot", default="entry", count=3)
    tree.group("entry", "NXentry", default="data")
    tree.dataset("entry/definition", "NXmx")
    tree.dataset("entry/ratio", 0.25, "m", long_name="a ratio")
    tree.dataset("entry/flag", np.bool_(True))
    tree.dataset("entry/count", 7)
    tree.dataset("entry/names", ["a", "bé"])
    tree.dataset("entry/matrix", np.arange(6, dtype="<i4").reshape(2, 3), "pixel")
    tree.dataset("entry/empty", np.zeros((0,), dtype="f4"))
    tree.dataset("entry/lattice", np.array([b"tP", b"cF"], dtype="S2"))
    tree.require_group("entry/deep/er/still", "NXcollection", leaf_class="NXreflections")
    tree.dataset("entry/deep/er/still/h", np.array([1, 2], dtype="i4"))
    tree.group("entry/data", "NXdata", signal="data")
    tree.chunked_dataset(
        "entry/data/data",
        (4, 3, 5),
        np.dtype("<u2"),
        chunks=(1, 3, 5),
        maxshape=(None, 3, 5),
        fill_value=65535,
        filters=((BITSHUFFLE.filter_id, tuple(BITSHUFFLE.filter_options)),),
        image_nr_low=np.int64(1),
    )
    tree.write_rows("entry/data/data", 1, np.arange(30, dtype="<u2").reshape(2, 3, 5))
    tree.chunked_dataset(
        "entry/data/spots", (5,), np.dtype("f4"), chunks=(2,), fill_value=np.nan, units="1"
    )
    tree.write_rows("entry/data/spots", 3, np.array([1.5, 2.5], dtype="f4"))
    if virtual:
        tree.virtual_dataset(
            "entry/data/virtual",
            (6,),
            np.dtype("S2"),
            b"",
            [(0, 3, "first.h5", "/x"), (3, 3, "second%%.h5", "/x")],
            units="counts",
        )
    tree.group("entry/ünïcode", "NXcollection")
    tree.hard_link("entry/ünïcode/again", "/entry/matrix")
    tree.external_link("entry/data/outside", "other.h5", "/entry/data/data")
    return tree


def test_both_engines_write_the_same_file(tmp_path):
    if probe() is not None:
        pytest.skip(f"h5tree engine 'native' unavailable here: {probe()}")
    for engine in ("native", "h5py"):
        with h5py.File(tmp_path / f"{engine}.h5", "w") as h5:
            assert every_kind_of_object().write(h5, engine=engine) == engine
    native = file_content(tmp_path / "native.h5")
    assert differences(native, file_content(tmp_path / "h5py.h5")) == []
    assert native["hard links"] == [["/entry/matrix", "/entry/ünïcode/again"]]
    assert native["/entry/data/outside"] == ("external", "other.h5", "/entry/data/data")


def test_the_private_hdf5_instance_writes_what_h5py_s_instance_writes(tmp_path):
    """The data files' instance makes its own types and property lists, and the filter
    options that h5py's instance completes (bitshuffle's element size) are carried over:
    object by object the same file, the filter's name included."""
    if probe_private() is not None:
        pytest.skip(f"no private HDF5 instance here: {probe_private()}")
    libver = ("earliest", "v110")
    with h5py.File(tmp_path / "shared.h5", "w", libver=libver) as h5:
        every_kind_of_object(virtual=False).write(h5)
    private = PrivateHdf5File(tmp_path / "private.h5", libver)
    every_kind_of_object(virtual=False).write_private(private.file_id)
    private.close()
    shared = file_content(tmp_path / "shared.h5")
    assert differences(shared, file_content(tmp_path / "private.h5")) == []
    with h5py.File(tmp_path / "private.h5", "r") as h5:
        _id, _flags, options, name = h5["entry/data/data"].id.get_create_plist().get_filter(0)
        assert options[2] == 2 and name.startswith(b"bitshuffle")  # u2: 2-byte elements
        assert h5["entry/data/data"][1:3].ravel().tolist() == list(range(30))


def test_the_private_hdf5_instance_keeps_types_apart_that_numpy_calls_equal(tmp_path):
    """numpy's dtype equality ignores h5py's metadata: text encodings, enum members and
    byte order must still give each dataset its own HDF5 type, in either order."""
    if probe_private() is not None:
        pytest.skip(f"no private HDF5 instance here: {probe_private()}")
    enum = h5py.enum_dtype({"OFF": 0, "ON": 1}, basetype="i1")
    columns = {
        "plain_i1": np.array([0, 1], dtype="i1"),
        "enum_i1": np.array([1, 0], dtype=enum),
        "ascii_text": np.array(["a", "b"], dtype=h5py.string_dtype("ascii")),
        "utf8_text": np.array(["é", "b"], dtype=h5py.string_dtype("utf-8")),
        "bytes_s2": np.array([b"tP", b"cF"], dtype="S2"),
        "utf8_s2": np.array([b"tP", b"cF"], dtype=h5py.string_dtype("utf-8", 2)),
        "big_i4": np.array([1, -2], dtype=">i4"),
        "little_i4": np.array([1, -2], dtype="<i4"),
        "big_f8": np.array([0.5, -2.25], dtype=">f8"),
    }
    for order in (list(columns), list(reversed(columns))):
        tree = H5Tree()
        tree.group("entry", "NXentry")
        for name in order:
            tree.dataset(f"entry/{name}", columns[name])
        with h5py.File(tmp_path / "shared.h5", "w") as h5:
            tree.write(h5)
        private = PrivateHdf5File(tmp_path / "private.h5", ("earliest", "v110"))
        tree.write_private(private.file_id)
        private.close()
        shared = file_content(tmp_path / "shared.h5")
        assert differences(shared, file_content(tmp_path / "private.h5")) == [], order
        (tmp_path / "shared.h5").unlink()
        (tmp_path / "private.h5").unlink()


def test_a_private_file_that_hdf5_refuses_leaves_nothing(tmp_path, monkeypatch):
    from jfsim.writer.hdf5_library import Hdf5Error, private_library

    if probe_private() is not None:
        pytest.skip(f"no private HDF5 instance here: {probe_private()}")
    monkeypatch.setattr(private_library(), "H5Pcreate", lambda *_arguments: -1)
    with pytest.raises(Hdf5Error, match="H5Pcreate failed"):
        PrivateHdf5File(tmp_path / "refused.h5", ("v110", "v110"))
    assert list(tmp_path.iterdir()) == []


def test_the_private_hdf5_instance_makes_no_virtual_datasets(tmp_path):
    if probe_private() is not None:
        pytest.skip(f"no private HDF5 instance here: {probe_private()}")
    private = PrivateHdf5File(tmp_path / "private.h5", ("v110", "v110"))
    with pytest.raises(ValueError, match="virtual datasets are not made"):
        every_kind_of_object().write_private(private.file_id)
    private.close()


@pytest.mark.parametrize("engine", ["auto", "h5py"])
def test_values_read_back_as_high_level_h5py_writes_them(tmp_path, engine):
    path = tmp_path / "tree.h5"
    with h5py.File(path, "w") as h5:
        every_kind_of_object().write(h5, engine=engine)
    with h5py.File(tmp_path / "reference.h5", "w") as h5:  # the same objects, high-level
        h5.attrs["NX_class"] = "NXroot"
        h5["definition"] = "NXmx"
        h5["ratio"] = 0.25
        h5["flag"] = np.bool_(True)
        h5["count"] = 7
        h5.create_dataset("names", data=["a", "bé"], dtype=h5py.string_dtype())
    reference = file_content(tmp_path / "reference.h5")
    content = file_content(path)
    assert content["/"]["attributes"]["NX_class"] == reference["/"]["attributes"]["NX_class"]
    for name in ("definition", "ratio", "flag", "count", "names"):
        expected = {k: v for k, v in reference[f"/{name}"].items() if k != "attributes"}
        found = {k: v for k, v in content[f"/entry/{name}"].items() if k != "attributes"}
        assert found == expected, name
    with h5py.File(path, "r") as h5:
        assert h5["entry/ratio"].attrs["units"] == "m"
        assert h5["entry/deep"].attrs["NX_class"] == "NXcollection"
        assert h5["entry/deep/er/still"].attrs["NX_class"] == "NXreflections"
        images = h5["entry/data/data"][()]
        assert (images[0] == 65535).all() and (images[3] == 65535).all()
        assert images[1:3].ravel().tolist() == list(range(30))
        spots = h5["entry/data/spots"][()]
        assert np.isnan(spots[:3]).all() and spots[3:].tolist() == [1.5, 2.5]
        assert h5["entry/data/virtual"].fillvalue == b""
        assert h5["entry/ünïcode/again"][()].tolist() == [[0, 1, 2], [3, 4, 5]]


@pytest.mark.parametrize("engine", ["auto", "h5py"])
def test_existing_groups_keep_or_replace_their_attributes(tmp_path, engine):
    with h5py.File(tmp_path / "tree.h5", "w") as h5:
        h5.attrs["file_name"] = "old"
        h5.create_group("entry").attrs["NX_class"] = "NXentry"
        h5.create_group("entry/data").attrs["signal"] = "old"
        tree = H5Tree()
        tree.attrs("", file_name="new")
        tree.require_group("entry/mx", "NXcollection")  # entry exists: left as it is
        tree.group("entry/data", "NXdata", signal="data")  # declared: attributes replaced
        tree.write(h5, engine=engine)
        assert h5.attrs["file_name"] == "new"
        assert dict(h5["entry"].attrs) == {"NX_class": "NXentry"}
        assert h5["entry/mx"].attrs["NX_class"] == "NXcollection"
        assert dict(h5["entry/data"].attrs) == {"NX_class": "NXdata", "signal": "data"}


def test_mistakes_in_a_tree_are_named():
    tree = H5Tree()
    with pytest.raises(ValueError, match="declare its group 'entry' first"):
        tree.dataset("entry/x", 1)
    tree.group("entry")
    tree.dataset("entry/x", 1)
    with pytest.raises(ValueError, match="'entry/x': declared twice"):
        tree.dataset("entry/x", 2)
    with pytest.raises(ValueError, match="engine 'fast'"):
        tree.write(None, engine="fast")  # type: ignore[arg-type]
