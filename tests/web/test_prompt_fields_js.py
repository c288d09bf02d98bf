"""The playground's `prompt-fields.js`: the coordinates field's text <-> the visual prompts, and the
form fields a request carries for them (the API's wire format: JSON-encoded lists in a form)."""

from __future__ import annotations

import json
from typing import Any

PARSE = """
return cases.map(([text, mode, w, h]) => m.f.parsePrompts(text, mode, w, h));
"""


def test_the_field_reads_what_it_writes(node) -> None:
    visual = {
        "mode": "object",
        "boxes": [{"box": [1, 2, 3, 4], "positive": True}],
        "points": [{"x": 120, "y": 80, "positive": True}, {"x": 5.5, "y": 6, "positive": False}],
        "box": [10, 20, 200, 240.25],
    }
    out = node(
        {"f": "prompt-fields.js"},
        """
        const v = cases;
        const objectText = m.f.formatPrompts(v);
        const exemplarText = m.f.formatPrompts({ ...v, mode: "exemplar" });
        return {
          objectText, exemplarText, text: m.f.formatPrompts({ ...v, mode: "text" }),
          object: m.f.parsePrompts(objectText, "object", 512, 512),
          exemplar: m.f.parsePrompts(exemplarText, "exemplar", 512, 512),
        };
        """,
        visual,
    )
    assert out["objectText"] == "box 10,20,200,240.25; point 120,80; -point 5.5,6"
    assert out["exemplarText"] == "box 1,2,3,4"
    assert out["text"] == ""
    assert out["object"] == {"boxes": [], "points": visual["points"], "box": visual["box"]}
    assert out["exemplar"] == {"boxes": visual["boxes"], "points": [], "box": None}


def test_the_field_is_lenient_in_spacing_and_case(node) -> None:
    [got] = node({"f": "prompt-fields.js"}, PARSE, [["  BOX(10 20 200 240) ;\n- box: 1,1,5,5;;", "exemplar", 0, 0]])
    assert got == {
        "boxes": [{"box": [10, 20, 200, 240], "positive": True}, {"box": [1, 1, 5, 5], "positive": False}],
        "points": [],
        "box": None,
    }


def test_the_field_names_each_mistake(node) -> None:
    cases: list[tuple[list[Any], str]] = [
        (["circle 1,2", "exemplar", 0, 0], 'write "box x0,y0,x1,y1" or "point x,y"'),
        (["box 1,2,3", "exemplar", 0, 0], "a box is 4 numbers"),
        (["point 1", "object", 0, 0], "a point is 2 numbers"),
        (["box 1,2,3,x", "exemplar", 0, 0], "a box is 4 numbers"),
        (["box 5,2,3,9", "exemplar", 0, 0], "x0 < x1 and y0 < y1"),
        (["box 1,2,1,9", "exemplar", 0, 0], "x0 < x1 and y0 < y1"),
        (["point -1,4", "object", 0, 0], "start at 0"),
        (["box 0,0,513,10", "exemplar", 512, 512], "outside the 512 × 512 image"),
        (["point 10,600", "object", 512, 512], "outside the 512 × 512 image"),
        (["point 10,10", "exemplar", 512, 512], "points are for Single object mode"),
        (["-box 1,1,5,5", "object", 512, 512], "has no sign"),
        (["box 1,1,5,5; box 2,2,6,6", "object", 512, 512], "takes one box"),
    ]
    got = node({"f": "prompt-fields.js"}, PARSE, [c for c, _ in cases])
    for (case, want), out in zip(cases, got, strict=True):
        assert set(out) == {"error"}, case
        assert want in out["error"], (case, out["error"])
    # Which item is wrong is said too.
    [second] = node({"f": "prompt-fields.js"}, PARSE, [["box 1,1,5,5; box 9", "exemplar", 0, 0]])
    assert second["error"].startswith('Item 2 ("box 9")')


FIELDS = """
return cases.map(([visual, text]) => m.f.visualFields(visual, text));
"""


def test_the_request_fields_follow_the_wire_format(node) -> None:
    box_a, box_b = [10, 20, 200, 240], [300, 40, 380, 120.5]
    exemplar = {
        "mode": "exemplar",
        "boxes": [{"box": box_a, "positive": True}, {"box": box_b, "positive": False}],
        "points": [{"x": 1, "y": 2, "positive": True}],
        "box": [0, 0, 5, 5],
    }
    obj = {**exemplar, "mode": "object"}
    text = {**exemplar, "mode": "text"}
    empty_exemplar = {"mode": "exemplar", "boxes": [], "points": [], "box": None}
    box_only = {"mode": "object", "boxes": [], "points": [], "box": box_a}
    nothing = {"mode": "object", "boxes": [], "points": [], "box": None}
    candidates = {**box_only, "multimask": True}
    exemplar_candidates = {**exemplar, "multimask": True}
    got = node(
        {"f": "prompt-fields.js"},
        FIELDS,
        [
            [exemplar, "person"],
            [obj, "person"],
            [text, "dog"],
            [empty_exemplar, ""],
            [box_only, "x"],
            [nothing, "x"],
            [candidates, ""],
            [exemplar_candidates, ""],
        ],
    )

    def decoded(out: dict[str, Any]) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in out["fields"]}

    # Exemplar boxes go with the typed text (a concept with exemplars); only the boxes of this mode.
    assert got[0]["prompt"] == "person"
    assert decoded(got[0]) == {"boxes": [box_a, box_b], "box_labels": [1, 0]}
    # Single object: the clicks and the one box, and no text prompt.
    assert got[1]["prompt"] == ""
    assert decoded(got[1]) == {"points": [[1, 2]], "point_labels": [1], "box": [0, 0, 5, 5]}
    # Text mode, and exemplar mode with nothing drawn: the plain text request of before.
    assert got[2] == {"prompt": "dog", "fields": []}
    assert got[3] == {"prompt": "", "fields": []}
    assert decoded(got[4]) == {"box": box_a}
    # Single object with nothing clicked is not sent (it would be an everything request).
    assert set(got[5]) == {"error"} and "click the object" in got[5]["error"]["message"]
    # multimask belongs to the single object's request only.
    assert decoded(got[6]) == {"box": box_a, "multimask": True}
    assert "multimask" not in decoded(got[7])
