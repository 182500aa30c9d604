"""Each decoding rule on a hand-made input with its expected output."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from PIL import Image

from mtlx.errors import DataError
from mtlx_pascal.classes import PART_GROUPS, context_class_names, normals_valid_ids
from mtlx_pascal.decode import (
    PartObject,
    binarise_saliency,
    edges_from_label_map,
    human_parts_label,
    laplacian,
    mask_normals,
    read_label_map,
    read_normals,
    read_part_objects,
    read_saliency,
    read_semseg,
)
from mtlx_pascal.testing import write_parts_mat


def _ids(*names: str) -> list[int]:
    table = {n: i + 1 for i, n in enumerate(context_class_names())}
    return [table[n] for n in names]


# -- class tables ---------------------------------------------------------------------


def test_context_table_has_459_classes_with_the_voc_ids_of_astmt():
    names = context_class_names()
    assert len(names) == 459
    # ASTMT's VOC -> Context ids: aeroplane 2, bicycle 23, person 284, table (diningtable) 397, tvmonitor 427
    assert _ids("aeroplane", "bicycle", "person", "table", "tvmonitor") == [2, 23, 284, 397, 427]


def test_normals_classes_include_tvmonitor_and_exclude_unknown_and_sky():
    valid = set(normals_valid_ids())
    assert len(valid) == 170
    assert set(_ids("tvmonitor", "wall", "floor", "person", "chair")) <= valid
    assert not set(_ids("unknown", "sky", "grass", "aeroplane")) & valid


def test_six_part_table_groups_left_and_right_limbs():
    assert {PART_GROUPS[n] for n in ("head", "hair", "nose", "leye", "rebrow")} == {1}
    assert PART_GROUPS["neck"] == PART_GROUPS["torso"] == 2
    assert PART_GROUPS["luarm"] == PART_GROUPS["ruarm"] == 3
    assert {PART_GROUPS[n] for n in ("llarm", "rlarm", "lhand", "rhand")} == {4}
    assert PART_GROUPS["luleg"] == PART_GROUPS["ruleg"] == 5
    assert {PART_GROUPS[n] for n in ("llleg", "rlleg", "lfoot", "rfoot")} == {6}
    assert len(PART_GROUPS) == 24


# -- semseg ---------------------------------------------------------------------------


def test_semseg_keeps_values_and_the_255_ignore(tmp_path):
    values = np.array([[0, 5, 20], [255, 15, 1]], dtype=np.uint8)
    Image.fromarray(values, "L").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_semseg(tmp_path / "a.png"), values)


def test_semseg_palette_png_is_read_as_indices(tmp_path):
    values = np.array([[0, 15], [255, 7]], dtype=np.uint8)
    image = Image.fromarray(values, "P")
    image.putpalette([(i * 37) % 256 for i in range(768)])  # colours unrelated to the indices
    image.save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_semseg(tmp_path / "p.png"), values)


def test_semseg_value_out_of_range_names_the_file(tmp_path):
    Image.fromarray(np.array([[0, 30]], dtype=np.uint8), "L").save(tmp_path / "bad.png")
    with pytest.raises(DataError, match=r"bad\.png.*0\.\.20 or 255.*\[30\]"):
        read_semseg(tmp_path / "bad.png")


# -- human parts ----------------------------------------------------------------------


def _mask(shape, box):
    m = np.zeros(shape, dtype=bool)
    m[box] = True
    return m


def test_parts_of_every_person_are_painted_with_the_six_part_ids():
    shape = (4, 5)
    person_a = PartObject(
        15, _mask(shape, np.s_[:, :2]), (("head", _mask(shape, np.s_[0, :2])), ("llleg", _mask(shape, np.s_[3, :2])))
    )
    car = PartObject(7, _mask(shape, np.s_[:, 2:]), (("wheel_1", _mask(shape, np.s_[0, 4])),))
    person_b = PartObject(15, _mask(shape, np.s_[:, 3:]), (("ruarm", _mask(shape, np.s_[1:3, 4])),))
    expected = np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 3], [0, 0, 0, 0, 3], [6, 6, 0, 0, 0]], dtype=np.uint8)
    np.testing.assert_array_equal(human_parts_label([person_a, car, person_b]), expected)


def test_later_parts_overwrite_earlier_ones():
    shape = (2, 2)
    person = PartObject(
        15,
        np.ones(shape, bool),
        (("torso", np.ones(shape, bool)), ("neck", _mask(shape, np.s_[0, 0])), ("lhand", _mask(shape, np.s_[1, 1]))),
    )
    np.testing.assert_array_equal(human_parts_label([person]), [[2, 2], [2, 4]])


def test_no_person_with_parts_gives_no_label():
    shape = (3, 3)
    assert human_parts_label([]) is None
    assert human_parts_label([PartObject(7, np.ones(shape, bool), ())]) is None
    assert human_parts_label([PartObject(15, np.ones(shape, bool), ())]) is None  # person without parts


def test_unknown_part_name_is_a_data_error_naming_the_file():
    person = PartObject(15, np.ones((2, 2), bool), (("tail", np.ones((2, 2), bool)),))
    with pytest.raises(DataError, match=r"x/1\.mat: unknown person part 'tail'"):
        human_parts_label([person], where="x/1.mat")


def test_parts_mat_is_read_by_position(tmp_path):
    shape = (3, 4)
    head = _mask(shape, np.s_[0, :])
    write_parts_mat(tmp_path / "a.mat", [(15, np.ones(shape), [("head", head)]), (7, np.ones(shape), [])])
    person, car = read_part_objects(tmp_path / "a.mat")
    assert (person.class_index, car.class_index) == (15, 7)
    assert [name for name, _ in person.parts] == ["head"]
    np.testing.assert_array_equal(person.parts[0][1], head)
    assert car.parts == ()
    write_parts_mat(tmp_path / "empty.mat", [])
    assert read_part_objects(tmp_path / "empty.mat") == []


# -- normals --------------------------------------------------------------------------


def test_normals_png_decodes_to_2v_over_255_minus_1(tmp_path):
    values = np.array([[[0, 255, 128], [51, 204, 255]]], dtype=np.uint8)
    Image.fromarray(values, "RGB").save(tmp_path / "n.png")
    expected = np.array([[[-1.0, 1.0, 1 / 255], [-0.6, 0.6, 1.0]]], dtype=np.float32)
    np.testing.assert_allclose(read_normals(tmp_path / "n.png"), expected, atol=1e-6)


def test_normals_outside_nyu_compatible_classes_become_zero():
    normals = np.arange(1, 19, dtype=np.float32).reshape(2, 3, 3)
    wall, sky, tv, unknown = _ids("wall", "sky", "tvmonitor", "unknown")
    labels = np.array([[wall, sky, tv], [unknown, wall, 0]])
    out = mask_normals(normals, labels, normals_valid_ids())
    keep = np.array([[1, 0, 1], [0, 1, 0]], dtype=bool)
    np.testing.assert_array_equal(out[keep], normals[keep])
    assert (out[~keep] == 0).all()


def test_normals_and_label_map_of_different_size_name_the_file():
    with pytest.raises(DataError, match=r"n/7\.png: normals are \(2, 2\)"):
        mask_normals(np.zeros((2, 2, 3)), np.zeros((3, 2)), normals_valid_ids(), where="n/7.png")


# -- saliency -------------------------------------------------------------------------


def test_saliency_is_binarised_above_half():
    np.testing.assert_array_equal(binarise_saliency(np.array([0, 127, 128, 255], dtype=np.uint8)), [0, 0, 1, 1])


def test_saliency_png_is_binary(tmp_path):
    Image.fromarray(np.array([[10, 200], [128, 127]], dtype=np.uint8), "L").save(tmp_path / "s.png")
    out = read_saliency(tmp_path / "s.png")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, [[0, 1], [1, 0]])


# -- edges ----------------------------------------------------------------------------


def test_laplacian_matches_hand_computation_with_mirrored_borders():
    labels = np.array([[1, 1, 3], [1, 2, 2]])
    # mirrored (reflect-101) neighbours: row -1 = row 1, row 2 = row 0, col -1 = col 1, col 3 = col 1
    expected = np.array(
        [
            [1 + 1 + 1 + 1 - 4 * 1, 2 + 2 + 1 + 3 - 4 * 1, 2 + 2 + 1 + 1 - 4 * 3],
            [1 + 1 + 2 + 2 - 4 * 1, 1 + 1 + 1 + 2 - 4 * 2, 3 + 3 + 2 + 2 - 4 * 2],
        ]
    )
    np.testing.assert_array_equal(laplacian(labels), expected)


def test_edges_are_thin_binary_and_on_label_boundaries():
    labels = np.array([[1, 1, 1, 2, 2, 2]] * 5)
    edges = edges_from_label_map(labels)
    assert edges.dtype == np.float32 and set(np.unique(edges)) <= {0.0, 1.0}
    band = np.abs(laplacian(labels)) > 0  # columns 2 and 3
    assert band[:, 2:4].all() and band.sum() == 10
    assert edges[~band].sum() == 0  # only where the Laplacian fires
    assert (edges[:, 2:4].sum(1) <= 1).all()  # the 2-pixel band is thinned to at most one pixel per row
    assert edges.sum() >= 4


def test_edge_rule_keeps_the_laplacian_cancellation_quirk():
    labels = np.full((5, 5), 5)
    labels[2, :2] = 4
    labels[2, 3:] = 6
    # pixel (2, 2): neighbours 4 + 6 + 5 + 5 = 4 * 5, so no edge although its row changes label
    assert laplacian(labels)[2, 2] == 0
    assert edges_from_label_map(labels)[2, 2] == 0


def test_label_map_mat_missing_variable_names_the_file(tmp_path):
    scipy.io.savemat(str(tmp_path / "lm.mat"), {"Labels": np.zeros((2, 2))})
    with pytest.raises(DataError, match=r"lm\.mat: malformed PASCAL-Context \.mat, no 'LabelMap'.*\['Labels'\]"):
        read_label_map(tmp_path / "lm.mat")
