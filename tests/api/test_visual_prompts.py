"""Visual prompts over HTTP: exemplar `boxes`/`box_labels`, typed `concepts`, interactive `points`/
`point_labels`/`box`/`multimask`, in all three body forms; every malformed value a 400 naming its
field (the cases ../shared/docs/bad-inputs.md asks for, extended by these fields), never a 5xx.

The image is the 40 x 30 (width x height) picture of api_support; the fake segmenter records what
the engine was asked.
"""

from __future__ import annotations

import base64
import json
import math

import numpy as np
import pytest
from api_support import AUTH, PATH, BrightSegmenter, app_client, assert_good_request_works, encode, picture, png
from PIL import Image

from segserve.prompts import Box, Point

IMAGE = png()  # 40 wide, 30 high
DATA_URI = "data:image/png;base64," + base64.b64encode(IMAGE).decode()


class RecordingSegmenter(BrightSegmenter):
    """Also records the concepts themselves (text and boxes), not only their labels."""

    def __init__(self) -> None:
        super().__init__()
        self.concepts: list = []
        self.object_calls: list = []

    def segment(self, image, concepts=(), options=None):
        self.concepts.append(list(concepts))
        return super().segment(image, concepts, options)


@pytest.fixture(scope="module")
def recorder():
    return RecordingSegmenter()


@pytest.fixture(scope="module")
def client(recorder):
    with app_client(recorder) as c:
        yield c


def post_json(client, **fields):
    body = {"model": "sam3", "image": DATA_URI, **fields}
    # json.dumps writes NaN/Infinity for non-finite floats, as a careless client would.
    return client.post(PATH, headers={**AUTH, "Content-Type": "application/json"}, content=json.dumps(body))


def post_form(client, multipart: bool, **fields):
    """A form body: each visual field JSON-encoded (strings pass as they are)."""
    form = {"model": "sam3", **{k: v if isinstance(v, str) else json.dumps(v) for k, v in fields.items()}}
    if multipart:
        return client.post(PATH, headers=AUTH, files={"image": ("x.png", IMAGE, "image/png")}, data=form)
    return client.post(PATH, headers=AUTH, data={**form, "image": DATA_URI})


# --- what is accepted, and what the engine is asked ----------------------------------------------
def test_prompt_and_boxes_make_one_concept_with_exemplars(client, recorder):
    r = post_json(client, prompt="thing", boxes=[[5, 4, 20, 12], [0.5, 0, 40, 30]], box_labels=[1, False])
    assert r.status_code == 200, r.text
    (concept,) = recorder.concepts[-1]
    assert (concept.label, concept.text) == ("thing", "thing")
    assert concept.boxes == (Box(5, 4, 20, 12), Box(0.5, 0, 40, 30, positive=False))
    assert r.json()["segments"][0]["label"] == "thing"


def test_boxes_without_a_prompt_are_one_exemplar_only_concept(client, recorder):
    r = post_json(client, prompt="", boxes=[[5, 4, 20, 12]])
    assert r.status_code == 200, r.text
    (concept,) = recorder.concepts[-1]
    assert (concept.label, concept.text, concept.model_text) == ("visual", None, "visual")
    assert r.json()["segments"][0]["label"] == "visual"


def test_concepts_carry_text_label_and_boxes_each(client, recorder):
    concepts = [
        {"text": "helmet", "label": "hard hat", "boxes": [[5, 4, 20, 12]], "box_labels": [1]},
        {"boxes": [[1, 1, 10, 10], [2, 2, 8, 9]], "box_labels": [True, 0]},
        {"text": "person"},
        {"label": "mine", "boxes": [[0, 0, 40, 30]]},
    ]
    r = post_json(client, concepts=concepts)
    assert r.status_code == 200, r.text
    got = recorder.concepts[-1]
    assert [(c.label, c.text, len(c.boxes)) for c in got] == [
        ("hard hat", "helmet", 1),
        ("visual", None, 2),
        ("person", "person", 0),
        ("mine", None, 1),
    ]
    assert got[1].boxes[1].positive is False
    assert [s["label"] for s in r.json()["segments"]] == ["hard hat", "visual", "person", "mine"]


@pytest.mark.parametrize(
    ("fields", "points", "box", "multimask", "segments"),
    [
        ({"points": [[10, 5]]}, (Point(10, 5),), None, False, 1),  # one click
        (
            {"points": [[10, 5], [30.5, 20]], "point_labels": [1, 0]},
            (Point(10, 5), Point(30.5, 20, False)),
            None,
            False,
            1,
        ),
        ({"box": [5, 4, 20, 12]}, (), Box(5, 4, 20, 12), False, 1),  # a box around the object
        ({"box": [5, 4, 20, 12], "points": [[6, 5]], "multimask": True}, (Point(6, 5),), Box(5, 4, 20, 12), True, 3),
        ({"points": [[40, 30]], "prompt": "  "}, (Point(40, 30),), None, False, 1),  # the far corner; a blank prompt
    ],
)
def test_points_and_box_are_interactive_mode(client, recorder, fields, points, box, multimask, segments):
    r = post_json(client, **fields)
    assert r.status_code == 200, r.text
    _, prompt, _ = recorder.object_calls[-1]
    assert (prompt.points, prompt.box, prompt.multimask) == (points, box, multimask)
    body = r.json()
    assert body["num_segments"] == segments
    assert {s["label"] for s in body["segments"]} == {"object"}


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "urlencoded"])
def test_form_bodies_carry_the_fields_json_encoded(client, recorder, multipart):
    r = post_form(client, multipart, prompt="thing", boxes="[[5, 4, 20, 12]]", box_labels="[0]")
    assert r.status_code == 200, r.text
    (concept,) = recorder.concepts[-1]
    assert concept.boxes == (Box(5, 4, 20, 12, positive=False),)
    r = post_form(client, multipart, concepts=[{"text": "a", "boxes": [[1, 1, 9, 9]]}], box="", points="")
    assert r.status_code == 200, r.text  # a blank field is "not given", as for the options
    r = post_form(client, multipart, prompt="", points="[[3, 4]]", multimask="true")
    assert r.status_code == 200, r.text
    assert recorder.object_calls[-1][1].multimask is True


def test_null_visual_fields_change_nothing(client, recorder):
    nulls = dict.fromkeys(("boxes", "box_labels", "concepts", "points", "point_labels", "box", "multimask"))
    plain = post_json(client, prompt="thing").json()
    assert post_json(client, prompt="thing", **nulls).json() == plain
    assert [c.boxes for c in recorder.concepts[-1]] == [()]


# --- every bad value: 400 invalid_parameter naming the field --------------------------------------
NAN, INF = math.nan, math.inf
BOX = [5, 4, 20, 12]
BAD_ROWS = [
    # coordinates past the decoded image (40 x 30), known only once it is decoded
    ("x1 past the width", {"prompt": "a", "boxes": [[0, 0, 41, 10]]}, "boxes"),
    ("y1 past the height", {"boxes": [[0, 0, 10, 30.5]]}, "boxes"),
    ("a concept's box past the image", {"concepts": [{"text": "a", "boxes": [[0, 0, 10, 99]]}]}, "concepts"),
    ("a point past the width", {"points": [[40.01, 3]]}, "points"),
    ("the interactive box past the height", {"box": [0, 0, 10, 31]}, "box"),
    # NaN, infinity, negative
    ("NaN in a box", {"boxes": [[NAN, 0, 10, 10]]}, "boxes"),
    ("infinity in a box", {"boxes": [[0, 0, INF, 10]]}, "boxes"),
    ("NaN in a point", {"points": [[3, NAN]]}, "points"),
    ("infinity in the box", {"box": [0, 0, 10, INF]}, "box"),
    ("a coordinate of 400 digits", {"boxes": [[0, 0, 10**400, 10]]}, "boxes"),  # no float holds it
    ("a point of 400 digits", {"points": [[10**400, 1]]}, "points"),
    ("a negative coordinate", {"boxes": [[-1, 0, 10, 10]]}, "boxes"),
    ("a negative point", {"points": [[-0.5, 3]]}, "points"),
    # empty and inverted boxes
    ("an empty box (zero width)", {"boxes": [[10, 0, 10, 10]]}, "boxes"),
    ("an empty box (zero height)", {"box": [0, 5, 10, 5]}, "box"),
    ("an inverted box", {"boxes": [[20, 0, 10, 10]]}, "boxes"),
    ("an inverted concept box", {"concepts": [{"boxes": [[0, 20, 10, 10]]}]}, "concepts"),
    # limits (Settings max_boxes=16, max_points=32, max_concepts=16)
    ("17 boxes", {"boxes": [BOX] * 17}, "boxes"),
    ("17 boxes over two concepts", {"concepts": [{"boxes": [BOX] * 9}, {"boxes": [BOX] * 8}]}, "concepts"),
    ("33 points", {"points": [[1, 1]] * 33}, "points"),
    ("17 concepts", {"concepts": [{"text": f"c{i}"} for i in range(17)]}, "concepts"),
    # label counts and values
    ("fewer box labels than boxes", {"boxes": [BOX, BOX], "box_labels": [1]}, "box_labels"),
    ("more point labels than points", {"points": [[1, 1]], "point_labels": [1, 0]}, "point_labels"),
    ("a concept's labels mismatched", {"concepts": [{"boxes": [BOX], "box_labels": [1, 1]}]}, "concepts"),
    ("a label of 2", {"boxes": [BOX], "box_labels": [2]}, "box_labels"),
    ("a label as a string", {"points": [[1, 1]], "point_labels": ["1"]}, "point_labels"),
    ("a label of -1", {"boxes": [BOX], "box_labels": [-1]}, "box_labels"),
    ("labels not a list", {"boxes": [BOX], "box_labels": 1}, "box_labels"),
    ("box labels without boxes", {"prompt": "a", "box_labels": [1]}, "box_labels"),
    ("point labels without points", {"prompt": "a", "point_labels": [1]}, "point_labels"),
    # wrong types and shapes
    ("boxes not nested", {"boxes": BOX}, "boxes"),
    ("a box of 3 numbers", {"boxes": [[1, 2, 3]]}, "boxes"),
    ("a box of 5 numbers", {"boxes": [[1, 2, 3, 4, 5]]}, "boxes"),
    ("boxes as a JSON string in JSON", {"boxes": "[[5, 4, 20, 12]]"}, "boxes"),
    ("a boolean coordinate", {"boxes": [[True, 0, 10, 10]]}, "boxes"),
    ("a string coordinate", {"box": ["0", 0, 10, 10]}, "box"),
    ("the box nested", {"box": [BOX]}, "box"),
    ("a point of 3 numbers", {"points": [[1, 2, 3]]}, "points"),
    ("points not a list", {"points": {"x": 1, "y": 2}}, "points"),
    ("multimask a string", {"points": [[1, 1]], "multimask": "yes"}, "multimask"),
    ("multimask a number", {"points": [[1, 1]], "multimask": 1}, "multimask"),
    ("multimask without points or box", {"prompt": "a", "multimask": True}, "multimask"),
    ("concepts not a list", {"concepts": {"text": "a"}}, "concepts"),
    ("a concept not an object", {"concepts": ["helmet"]}, "concepts"),
    ("a concept with an unknown key", {"concepts": [{"text": "a", "box": BOX}]}, "concepts"),
    ("a concept with neither text nor boxes", {"concepts": [{"label": "x"}]}, "concepts"),
    ("a concept's text a number", {"concepts": [{"text": 5}]}, "concepts"),
    ("a concept's label a list", {"concepts": [{"text": "a", "label": ["b"]}]}, "concepts"),
    ("a concept's text too long", {"concepts": [{"text": "x" * 201}]}, "concepts"),
    # combinations the format excludes
    ("boxes with two concepts in the prompt", {"prompt": "a, b", "boxes": [BOX]}, "boxes"),
    ("concepts with a prompt", {"prompt": "a", "concepts": [{"text": "b"}]}, "concepts"),
    ("concepts with boxes", {"boxes": [BOX], "concepts": [{"text": "b"}]}, "concepts"),
    ("box labels beside concepts", {"concepts": [{"text": "b"}], "box_labels": [1]}, "box_labels"),
    ("points with exemplar boxes", {"points": [[1, 1]], "boxes": [BOX]}, "points"),
    ("the box with concepts", {"box": BOX, "concepts": [{"text": "b"}]}, "box"),
    ("points with a prompt", {"points": [[1, 1]], "prompt": "dog"}, "points"),
    ("box labels in interactive mode", {"box": BOX, "box_labels": [1]}, "box_labels"),
]


@pytest.mark.parametrize(("fields", "param"), [row[1:] for row in BAD_ROWS], ids=[row[0] for row in BAD_ROWS])
def test_bad_visual_fields_are_400_naming_the_field(client, fields, param):
    r = post_json(client, **fields)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_parameter", param), error
    assert error["message"]


FORM_BAD_ROWS = [
    ("boxes not JSON", {"prompt": "a", "boxes": "[[5, 4, 20"}, "boxes"),
    ("points not JSON", {"points": "10,20"}, "points"),
    ("multimask not JSON", {"points": "[[1, 1]]", "multimask": "yes"}, "multimask"),
    ("a box past the image", {"boxes": "[[0, 0, 41, 10]]"}, "boxes"),
    ("labels mismatched", {"points": "[[1, 1]]", "point_labels": "[1, 1]"}, "point_labels"),
    ("deeply nested", {"concepts": "[" * 100_000 + "]" * 100_000}, "concepts"),
]


@pytest.mark.parametrize("multipart", [True, False], ids=["multipart", "urlencoded"])
@pytest.mark.parametrize(("fields", "param"), [row[1:] for row in FORM_BAD_ROWS], ids=[r[0] for r in FORM_BAD_ROWS])
def test_bad_visual_form_fields_are_400_naming_the_field(client, multipart, fields, param):
    r = post_form(client, multipart, **fields)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_the_server_answers_normally_after_the_bad_rows(client):
    assert_good_request_works(client)


def test_coordinates_are_checked_in_the_exif_rotated_frame(client, recorder):
    # Stored 40 wide x 30 high with orientation 6 (rotate 90 degrees on display): the image is 30 x 40.
    exif = Image.Exif()
    exif[0x0112] = 6
    data = encode(picture(), "JPEG", exif=exif)
    uri = "data:image/jpeg;base64," + base64.b64encode(data).decode()

    def post(**fields):
        body = {"model": "sam3", "image": uri, **fields}
        return client.post(PATH, headers=AUTH, json=body)

    assert post(boxes=[[0, 0, 25, 38]]).status_code == 200  # inside 30 x 40, though past the stored 30 rows
    assert recorder.concepts[-1][0].boxes == (Box(0, 0, 25, 38),)
    r = post(boxes=[[0, 0, 35, 10]])  # inside the stored 40 columns, past the displayed 30
    assert r.status_code == 400 and r.json()["error"]["param"] == "boxes"
    assert "30 x 40" in r.json()["error"]["message"]
    assert post(points=[[29, 39]]).status_code == 200


def test_limits_come_from_settings(recorder):
    with app_client(recorder, max_boxes=2, max_points=1) as c:
        assert post_json(c, boxes=[BOX] * 2).status_code == 200
        assert post_json(c, boxes=[BOX] * 3).json()["error"]["param"] == "boxes"
        assert post_json(c, points=[[1, 1], [2, 2]]).json()["error"]["param"] == "points"


def test_the_schema_documents_the_fields_and_the_convention(client):
    content = client.get("/openapi.json").json()["paths"][PATH]["post"]["requestBody"]["content"]
    for kind in ("application/json", "multipart/form-data", "application/x-www-form-urlencoded"):
        props = content[kind]["schema"]["properties"]
        for name in ("boxes", "box_labels", "concepts", "points", "point_labels", "box", "multimask"):
            assert name in props, (kind, name)
        for name in ("boxes", "points", "box"):
            assert "pixels, xyxy, origin top-left, after EXIF orientation" in props[name]["description"]
    assert content["multipart/form-data"]["schema"]["properties"]["boxes"]["type"] == "string"  # JSON-encoded


# --- the real engine, end to end -------------------------------------------------------------------
def test_tiny_sam3_answers_exemplars_and_clicks(tiny_segmenter):
    with app_client(tiny_segmenter, threshold=0.0, max_segments=3) as c:
        r = post_json(c, prompt="thing", boxes=[BOX], box_labels=[1])
        assert r.status_code == 200, r.text
        assert {s["label"] for s in r.json()["segments"]} == {"thing"}
        r = post_json(c, concepts=[{"boxes": [BOX]}, {"text": "dog", "boxes": [[0, 0, 40, 30]], "box_labels": [0]}])
        assert r.status_code == 200, r.text
        r = post_json(c, points=[[10, 8], [30, 20]], point_labels=[1, 0], multimask=True)
        assert r.status_code == 200, r.text
        body = r.json()
        assert 1 <= body["num_segments"] <= 3
        assert all(s["label"] == "object" and s["mask"]["size"] == [30, 40] for s in body["segments"])
        scores = [s["confidence"] for s in body["segments"]]
        assert scores == sorted(scores, reverse=True) and np.all(np.array(scores) <= 1)
