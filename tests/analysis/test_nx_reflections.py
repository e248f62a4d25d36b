"""The per-image NXreflections groups are written through h5py's low-level calls; they must
hold what ``create_dataset`` and ``attrs[...] =`` would have written."""

from __future__ import annotations

import dataclasses

import h5py
import numpy as np

from jfsim.analysis.nx_reflections import REFLECTION_UNITS, write_reflections
from jfsim.analysis.reflections import IntegratedReflections


def _table(images: list[int], rows_per_image: int) -> IntegratedReflections:
    rng = np.random.default_rng(5)
    n = len(images) * rows_per_image
    columns: dict[str, np.ndarray] = {}
    for field in dataclasses.fields(IntegratedReflections):
        if field.name == "image":
            columns[field.name] = np.repeat(np.asarray(images, dtype=np.int64), rows_per_image)
        elif field.name in ("h", "k", "l", "lattice", "signal_pixels", "background_pixels"):
            columns[field.name] = rng.integers(-40, 40, n).astype(np.int32)
        else:
            columns[field.name] = rng.normal(size=n)
    return IntegratedReflections(**columns)


def test_reflection_columns_are_what_the_high_level_api_writes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    table = _table([4, 0, 9], rows_per_image=7)
    path = tmp_path / "reflections.h5"
    with h5py.File(path, "w", libver=("v110", "latest")) as h5:
        write_reflections(h5.create_group("entry"), [table], None)
        reference = h5.create_group("reference")
        for name in REFLECTION_UNITS:
            dataset = reference.create_dataset(name, data=np.zeros(7, dtype=np.float32))
            dataset.attrs["units"] = "pixel"
    with h5py.File(path, "r") as h5:
        groups = h5["entry/reflections"]
        assert sorted(groups) == ["image_000001", "image_000005", "image_000010"]
        for name, group in groups.items():
            assert group.attrs["NX_class"] == "NXreflections"
            assert list(group) == sorted(REFLECTION_UNITS)
            image = int(name.removeprefix("image_")) - 1
            rows = table.image == image
            np.testing.assert_array_equal(group["h"][()], table.h[rows])
            np.testing.assert_array_equal(
                group["int_sum"][()], table.intensity_photons[rows].astype(np.float32)
            )
            np.testing.assert_array_equal(group["observed_frame"][()], np.full(7, image))
            for column, units in REFLECTION_UNITS.items():
                dataset = group[column]
                expected = h5["reference"][column]
                assert dataset.shape == (7,)
                creation = dataset.id.get_create_plist()
                assert creation.get_layout() == expected.id.get_create_plist().get_layout()
                assert not creation.get_obj_track_times()
                if units is None:
                    assert "units" not in dataset.attrs
                    continue
                assert dataset.attrs["units"] == units
                assert isinstance(dataset.attrs["units"], str)
                written = dataset.attrs.get_id("units")
                assert written.get_type() == expected.attrs.get_id("units").get_type()
                assert written.shape == ()


def test_one_table_per_image_writes_what_one_table_of_the_run_writes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    table = _table([4, 0, 9], rows_per_image=7)
    per_image = [table.select(table.image == image) for image in (9, 4, 0)]
    assert table.by_image()[0] is not table and per_image[0].by_image()[0] is per_image[0]
    paths = [tmp_path / "run.h5", tmp_path / "per_image.h5"]
    for path, tables in zip(paths, ([table], per_image), strict=True):
        with h5py.File(path, "w", libver=("v110", "latest")) as h5:
            write_reflections(h5.create_group("entry"), tables, None)
    with h5py.File(paths[0], "r") as run, h5py.File(paths[1], "r") as split:
        assert sorted(run["entry/reflections"]) == sorted(split["entry/reflections"])
        for name, group in run["entry/reflections"].items():
            for column in REFLECTION_UNITS:
                np.testing.assert_array_equal(
                    group[column][()], split[f"entry/reflections/{name}/{column}"][()]
                )
