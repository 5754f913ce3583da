"""A representative corpus of the texts the MAPO environments and a zooming agent produce.

Used to train the bundled tiny agent's byte-level BPE tokenizer (:mod:`mapo_agent.policy.tiny`), so
that frequent words of the task (colours, shapes, objects, positions, the tool-call JSON, the tags)
become few tokens. The tokenizer still encodes *any* text: rare characters fall back to bytes.

The corpus is a pure function of its seed (``random.Random``), so the tokenizer build is reproducible.
"""

from __future__ import annotations

import json
import random

COLOURS = (
    "red", "green", "blue", "yellow", "magenta", "cyan", "orange", "purple", "pink", "brown", "black",
    "white", "grey", "gray", "silver", "gold", "beige", "navy", "teal", "olive",
)  # fmt: skip
SHAPES = ("circle", "square", "triangle", "cross", "star", "diamond", "hexagon", "rectangle", "ring", "heart")
PATTERNS = ("striped", "dotted", "checkered", "plain", "spotted", "zigzag", "solid", "hatched", "wavy", "plaid")
TILE_PATTERNS = ("horizontal stripes", "vertical stripes", "checkerboard", "plain")
OBJECTS = (
    "cup", "mug", "bottle", "car", "bicycle", "dog", "cat", "bird", "person", "woman", "man", "child", "bag",
    "backpack", "umbrella", "chair", "bench", "sign", "flag", "kite", "ball", "clock", "lamp", "tree", "flower",
    "boat", "bus", "truck", "shirt", "hat", "shoe", "book", "phone", "laptop", "vase", "door", "window", "box",
    "tile", "object", "shape", "ribbon", "balloon", "cone", "plate", "bowl", "glove", "jacket", "scarf", "sticker",
)  # fmt: skip
POSITIONS = ("left", "right", "above", "below", "top", "bottom", "center", "middle", "corner", "near", "behind")
WORDS = (
    "OPEN", "EXIT", "STOP", "SALE", "CAFE", "HOTEL", "PARK", "BANK", "TAXI", "BUS", "PIZZA", "BAR", "SHOP", "ZONE",
    "No Parking", "Main St", "Welcome", "Keep Out", "One Way", "Danger", "Push", "Pull", "Toilet", "Platform 3",
)  # fmt: skip

TILES_SYSTEM_PROMPT = "Zoom on the tile, then answer."
"""``mapo_env.envs.tiles.TILES_SYSTEM_PROMPT`` (copied: the agent package does not import env internals here)."""
SYSTEM_PROMPT = (
    "You answer questions about an image. Small details may only be visible if you zoom in.\n"
    "Tool:\n<tools>\n{schema}\n</tools>\n"
    'To zoom, write <tool_call>{{"name": "image_zoom_in_tool", "arguments": {{"label": "...", "bbox_2d": '
    "[x1, y1, x2, y2]}}}}</tool_call> and stop; the crop comes back as a new image. "
    "{describe}Think inside <think>...</think> if you like. Finish with <answer>LETTER</answer>."
)
TOOL_SCHEMA = {
    "type": "function",
    "function": {
        "name": "image_zoom_in_tool",
        "description": (
            "Zoom in on a region of an image: crops it from the original full-resolution image and returns the "
            "crop as a new image."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "label": {"type": "string", "description": "A short description of what you expect to see."},
                "bbox_2d": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 4,
                    "maxItems": 4,
                    "description": "[x1, y1, x2, y2], top-left and bottom-right corners, in pixel coordinates.",
                },
                "image_index": {"type": "integer", "description": "Which image to zoom into (default 0)."},
            },
            "required": ["label", "bbox_2d"],
        },
    },
}
DESCRIBE = (
    "The label must say what you expect to see in the box. ",
    "When a crop comes back, start your next turn with <description>what the crop shows</description>. ",
)
ERRORS = (
    "Error: the tool call is not valid JSON.",
    "Error: unknown tool; the only tool is image_zoom_in_tool.",
    "Error: zoom expects bbox_2d [x1, y1, x2, y2] with 0 <= x1 < x2 <= W and 0 <= y1 < y2 <= H.",
    "Error: the zoom call needs a non-empty label.",
    "Error: no <tool_call> or <answer> in your turn.",
    "Error: the box is too thin.",
    "Error: image_index does not name an image.",
    'Error: "arguments" must be an object like {"label": "...", "bbox_2d": [x1, y1, x2, y2]}; got nothing.',
)


def _options(rng: random.Random, pool: tuple[str, ...], template: str = "{}") -> list[str]:
    return [template.format(x) for x in rng.sample(pool, 4)]


def question(rng: random.Random) -> tuple[str, list[str]]:
    """One question with its options, in one of the benchmark styles (V*, HR-Bench, TextSpot, Shapes)."""
    colour, obj, obj2 = rng.choice(COLOURS), rng.choice(OBJECTS), rng.choice(OBJECTS)
    kind = rng.randrange(9)
    if kind >= 7:  # the small Tiles env, which the bundled agent trains on
        return f"What pattern is on the {colour} tile?", rng.sample(TILE_PATTERNS, 4)
    if kind == 0:
        return f"What is the color of the {obj}?", _options(rng, COLOURS, "The color of the " + obj + " is {}.")
    if kind == 1:
        return f"What shape is the {colour} object?", _options(rng, SHAPES)
    if kind == 2:
        return f"What pattern does the {colour} {obj} have?", _options(rng, PATTERNS)
    if kind == 3:
        side = rng.choice(("left", "right"))
        other = "right" if side == "left" else "left"
        options = [
            f"The {obj} is on the {side} side of the {obj2}.",
            f"The {obj} is on the {other} side of the {obj2}.",
        ]
        return f"Is the {obj} on the left or right side of the {obj2}?", options
    if kind == 4:
        return f"What is written on the {colour} {obj}?", _options(rng, WORDS)
    if kind == 5:
        return f"How many {obj}s are there in the image?", [str(n) for n in rng.sample(range(10), 4)]
    if rng.random() < 0.5:
        return f"Which object in the image is {colour}?", [o.capitalize() for o in _options(rng, OBJECTS)]
    return f"Which object is {rng.choice(POSITIONS)} the {colour} {obj}?", _options(rng, OBJECTS)


def _box(rng: random.Random, limit: int) -> list[int]:
    x1, y1 = rng.randrange(limit - 28), rng.randrange(limit - 28)
    return [x1, y1, min(limit, x1 + rng.randrange(14, 200)), min(limit, y1 + rng.randrange(14, 200))]


def tool_call(rng: random.Random) -> str:
    """An assistant turn that calls the zoom tool, optionally thinking or describing first."""
    label = f"{rng.choice(COLOURS)} {rng.choice(OBJECTS + ('tile',) * 10)}"
    args: dict = {"label": label, "bbox_2d": _box(rng, rng.choice((112, 224, 448, 1000, 1024)))}
    if rng.random() < 0.1:
        args["image_index"] = rng.randrange(3)
    if rng.random() < 0.15:  # bbox-first order also occurs (DeepEyes)
        args = {"bbox_2d": args["bbox_2d"], "label": label}
    call = json.dumps({"name": "image_zoom_in_tool", "arguments": args})
    text = f"<tool_call>{call}</tool_call>"
    if rng.random() < 0.3:
        text = f"<description>a {rng.choice(PATTERNS)} {label} near the {rng.choice(POSITIONS)}</description>" + text
    if rng.random() < 0.5:
        text = f"<think>The {label} is small; I zoom in on the {rng.choice(POSITIONS)} to see it.</think>" + text
    return text


def answer(rng: random.Random, options: list[str]) -> str:
    """An assistant turn that answers (letter or option text)."""
    index = rng.randrange(len(options))
    body = "ABCDEFGH"[index] if rng.random() < 0.8 else options[index]
    think = f"<think>The crop shows the {rng.choice(OBJECTS)} clearly.</think>" if rng.random() < 0.4 else ""
    return f"{think}<answer>{body}</answer>"


def tool_reply(rng: random.Random) -> str:
    """The text of an environment reply: a crop marker or an error, with the turns left."""
    left = rng.randrange(1, 6)
    tail = "This is your last turn: answer now with <answer>LETTER</answer>." if left == 1 else f"{left} turns left."
    if rng.random() < 0.7:
        return f"<tool_response></tool_response>\nImage {rng.randrange(1, 6)}. {tail}"
    return f"<tool_response>{rng.choice(ERRORS)}</tool_response>\n{tail}"


def make_corpus(num_episodes: int = 1500, seed: int = 0) -> list[str]:
    """Texts of ``num_episodes`` synthetic episodes (system prompt, questions, options, calls, replies, answers).

    Args:
        num_episodes: How many episodes to write; each adds ~4 lines.
        seed: Seed of the generator; the corpus is a pure function of ``(num_episodes, seed)``.

    Returns:
        A list of strings (one message each).
    """
    rng = random.Random(seed)
    schema = json.dumps(TOOL_SCHEMA, separators=(",", ":"))
    lines = [SYSTEM_PROMPT.format(schema=schema, describe=d) for d in DESCRIBE] + [TILES_SYSTEM_PROMPT]
    for _ in range(num_episodes):
        text, options = question(rng)
        lines.append(
            "Question: " + text + "\nOptions:\n" + "\n".join(f"{'ABCD'[i]}. {o}" for i, o in enumerate(options))
        )
        for _ in range(rng.randrange(0, 3)):
            lines.append(tool_call(rng))
            lines.append(tool_reply(rng))
        lines.append(answer(rng, options))
    return lines
