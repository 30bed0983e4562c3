"""Narrowing the Arrow Room's palette: data.colours / data.shapes, `gnm data make --colours`."""

import json

import numpy as np
import pytest

from gnm import cli
from gnm.config import Config, DataConfig, check_config, set_override
from gnm.data.arrow_room import COLOURS, ArrowRoomGenerator, choose_palette, sample_layout
from gnm.data.raycast import SHAPES
from gnm.data.registry import build_dataset
from gnm.errors import GNMError

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


def test_choose_palette_maps_names_to_indices_and_defaults_to_all():
    assert choose_palette() == (tuple(range(8)), (0, 1, 2))
    colours, shapes = choose_palette(["yellow", "gray"], ["cylinder", "sphere"])
    assert colours == (7, 0) and [SHAPES[s] for s in shapes] == ["cylinder", "sphere"]


@pytest.mark.parametrize("colours, shapes, words", [
    (["pink"], [], ["unknown colour 'pink'", "gray, red, blue"]),
    ([], ["arrow", "cube"], ["unknown shape 'arrow'", "besides the arrow", "sphere, cube"]),
    (["red", "red"], [], ["lists 'red' twice"]),
    ([], ["cube"], ["one shape", "needs two"]),
])
def test_choose_palette_refuses_bad_names_in_one_sentence(colours, shapes, words):
    with pytest.raises(GNMError) as err:
        choose_palette(colours, shapes)
    msg = str(err.value)
    assert all(w in msg for w in words) and msg.count(". ") == 0 and "\n" not in msg


def test_scenes_draw_only_the_named_colours_and_shapes_and_keep_the_rule():
    images, notes = ArrowRoomGenerator("train", 48, seed=2, colours=["red", "cyan"],
                                       shapes=["cube", "cylinder"]).batch(range(10))
    assert images.shape == (10, 48, 48, 3)
    seen_colours = {c for a in notes for c in a["colours"]}
    seen_shapes = {s for a in notes for s in a["shapes"][1:]}
    assert seen_colours == {"red", "cyan"} and seen_shapes == {"cube", "cylinder"}
    for a in notes:
        others = a["shapes"][1:]
        assert a["rule_holds"] and others.count(others[a["target"] - 1]) == 1


def test_the_default_palette_draws_what_the_generator_drew_before_the_palette_existed():
    # scene 0 of train, seed 0, attempt 0: the layout the generator made before data.colours
    # and data.shapes existed (checked against that commit's sample_layout on 300 streams)
    lay = sample_layout(np.random.default_rng([0, 7, 0, 0, 0]))
    assert lay.shape.tolist() == [[3, 1, 2, 2]] and lay.colour.tolist() == [[0, 4, 6, 5]]
    assert lay.target.tolist() == [1] and lay.material.tolist() == [1]


def test_naming_every_colour_and_shape_is_the_default_palette():
    full = ArrowRoomGenerator("val", 48, colours=list(COLOURS),
                              shapes=["sphere", "cube", "cylinder"]).batch(range(3))[0]
    np.testing.assert_array_equal(full, ArrowRoomGenerator("val", 48).batch(range(3))[0])


def test_config_fields_parse_and_are_refused_by_mnist_datasets():
    cfg = Config(data=DataConfig(dataset="arrow", size=48, channels=3))
    set_override(cfg, "data.colours=[red, blue]")
    assert cfg.data.colours == ("red", "blue")
    check_config(cfg)
    assert len(build_dataset(cfg.data, "val")[0]["image"]) == 3
    set_override(cfg, "data.shapes=[sphere]")
    with pytest.raises(GNMError, match="one shape"):
        build_dataset(cfg.data, "val")
    with pytest.raises(GNMError, match="must be a list of names"):
        set_override(cfg, "data.colours=3")
    mnist = DataConfig(dataset="mnist4", size=32, colours=("red",))
    with pytest.raises(GNMError, match=r"^data.colours applies only to dataset arrow, not to "):
        build_dataset(mnist, "val")


def test_export_records_the_palette_and_refuses_mixing(tmp_path, capsys):
    out = tmp_path / "arrow"
    base = ["data", "make", "arrow", "--split", "train", "--n", "2", "--size", "48", "--quiet",
            "--out", str(out)]
    assert cli.main([*base, "--colours", "red, blue"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["colours"] == ["red", "blue"] and "shapes" not in manifest
    notes = json.loads((out / "annotations.json").read_text())["scenes"]
    assert {o["colour"] for s in notes for o in s["objects"]} <= {"red", "blue"}
    capsys.readouterr()
    assert cli.main(base) == 2  # the same folder without the palette is another export
    assert "already holds a different export (colours=['red', 'blue'] (asked []))" in \
        capsys.readouterr().err
    assert cli.main(["data", "make", "mnist4", "--n", "2", "--size", "48", "--quiet", "--out",
                     str(tmp_path / "m"), "--shapes", "cube,sphere"]) == 2
    assert "data.shapes applies only to dataset arrow" in capsys.readouterr().err
    # a refused name leaves nothing behind, so the corrected command runs
    fresh = tmp_path / "fresh"
    assert cli.main([*base[:-1], str(fresh), "--colours", "pink"]) == 2
    assert "unknown colour 'pink'" in capsys.readouterr().err
    assert not (fresh / "manifest.json").exists()
    assert cli.main([*base[:-1], str(fresh), "--colours", "red"]) == 0
    # training on the export needs the same palette in the data section
    data = DataConfig(dataset="arrow", size=48, channels=3, path=str(out))
    with pytest.raises(GNMError, match=r"have colours \['red', 'blue'\], but the run needs \[\]"):
        build_dataset(data, "train")
