"""`segserve segment`'s visual-prompt flags -> the wire format's fields (README "Visual prompts").

    segserve segment photo.jpg -p helmet --box 10,20,200,240 --negative-box 300,20,380,120
    segserve segment photo.jpg --point 120,80 --negative-point 200,90 --multimask

`--box`/`--negative-box` are exemplars ("every instance like this"), of the prompt's concept or,
with no prompt, of one concept labelled "visual". Interactive mode (one object, the SAM 3 tracker)
is chosen by `--point`/`--negative-point`, `--multimask` or `--object`: there a single `--box` is
the box around that object. Coordinates are the image's pixels after EXIF orientation, origin
top-left; the engine and the server check them (one error naming the flag).
"""

from __future__ import annotations

import argparse
from typing import Any

# The flag that sets each wire field, for error messages that name what to change.
FLAG_OF_FIELD = {
    "boxes": "--box",
    "box_labels": "--negative-box",
    "box": "--box",
    "points": "--point",
    "point_labels": "--negative-point",
    "multimask": "--multimask",
}


def _numbers(n: int, what: str) -> Any:
    """An argparse type: `n` comma-separated numbers, e.g. `10,20,200,240`."""

    def parse(text: str) -> list[float]:
        parts = text.replace(" ", "").split(",")
        try:
            values = [float(p) for p in parts]
        except ValueError:
            values = []
        if len(values) != n:
            raise argparse.ArgumentTypeError(f"expected {what}, {n} comma-separated numbers; got {text!r}")
        return values

    parse.__name__ = what  # argparse names the type in its message
    return parse


class _Labelled(argparse.Action):
    """Appends (coordinates, label) to one list shared by a positive and a negative flag, so the
    order given on the command line is the order sent."""

    def __init__(self, *args: Any, label: int, **kwargs: Any) -> None:
        self.label = label
        super().__init__(*args, **kwargs)

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any, option_string: Any = None) -> None:
        items = list(getattr(namespace, self.dest) or [])
        items.append((values, self.label))
        setattr(namespace, self.dest, items)


def add_visual_flags(parser: argparse.ArgumentParser) -> None:
    box, point = _numbers(4, "x0,y0,x1,y1"), _numbers(2, "x,y")
    group = parser.add_argument_group(
        "visual prompts", "pixels of the image after EXIF orientation, origin top-left; boxes are x0,y0,x1,y1"
    )
    common = {"dest": "boxes", "type": box, "metavar": "X0,Y0,X1,Y1", "default": None}
    group.add_argument(
        "--box",
        action=_Labelled,
        label=1,
        help="an exemplar box, repeatable (interactive mode: the object's box)",
        **common,
    )
    group.add_argument(
        "--negative-box", action=_Labelled, label=0, help="a negative exemplar box, repeatable", **common
    )
    common = {"dest": "points", "type": point, "metavar": "X,Y", "default": None}
    group.add_argument(
        "--point", action=_Labelled, label=1, help="a click on the one object (interactive mode)", **common
    )
    group.add_argument("--negative-point", action=_Labelled, label=0, help="a click off the object", **common)
    group.add_argument(
        "--multimask", action="store_true", help="interactive mode: the tracker's 3 candidate masks, best first"
    )
    group.add_argument("--object", action="store_true", help="interactive mode with --box alone (no clicks)")


def visual_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The wire fields the flags describe (absent ones left out)."""
    boxes = args.boxes or []
    points = args.points or []
    fields: dict[str, Any] = {}
    if points or args.multimask or args.object:
        negative = [coords for coords, label in boxes if not label]
        if negative or len(boxes) > 1:
            raise argparse.ArgumentTypeError(
                "interactive mode (--point, --multimask, --object) takes one --box around the object and no "
                "--negative-box; exemplar boxes go without clicks"
            )
        if boxes:
            fields["box"] = boxes[0][0]
        if points:
            fields["points"] = [coords for coords, _ in points]
            fields["point_labels"] = [label for _, label in points]
        if args.multimask:
            fields["multimask"] = True
        if not fields:
            raise argparse.ArgumentTypeError("--object needs a --box around the object")
    elif boxes:
        fields["boxes"] = [coords for coords, _ in boxes]
        fields["box_labels"] = [label for _, label in boxes]
    return fields
